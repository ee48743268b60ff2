const t=crypto.subtle,o=crypto.getRandomValues.bind(crypto);export{o as getRandomValues,t as subtle};
