import*as s from"../binary.js";class e{constructor(t){this.seed=t,this._state=t}next(){let t=this._state;return t^=t<<13,t^=t>>17,t^=t<<5,this._state=t,(t>>>0)/(s.BITS32+1)}}export{e as Xorshift32};
