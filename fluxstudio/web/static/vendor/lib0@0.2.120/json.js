const r=JSON.stringify,s=JSON.parse;export{s as parse,r as stringify};
