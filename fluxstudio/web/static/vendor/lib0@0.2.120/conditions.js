const e=n=>n===void 0?null:n;export{e as undefinedToNull};
