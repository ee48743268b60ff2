const t=Symbol,e=o=>typeof o=="symbol";export{t as create,e as isSymbol};
