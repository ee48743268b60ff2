const o=Symbol("Equality"),a=(t,l)=>t===l||!!t?.[o]?.(l)||!1;export{o as EqualityTraitSymbol,a as equals};
