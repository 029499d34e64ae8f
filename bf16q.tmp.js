const a = require('node-gyp-build')(process.cwd());
console.log(a.isaInfo());
function bf(x){const f=new Float32Array([x]);const u=new Uint32Array(f.buffer);let b=u[0];
 if((b&0x7f800000)===0x7f800000&&(b&0x7fffff)) return NaN; if((b&0x7f800000)===0) return 0;
 const lsb=(b>>>16)&1; b=((b+0x7fff+lsb)>>>16)<<16; u[0]=b>>>0; return f[0];}
for (const isa of ['avx512','avx2','scalar']) {
 a.setIsa(isa);
 for (const [m,k,n] of [[1,1,1],[13,7,33],[100,257,70],[300,768,768],[5,3,40]]) {
  const A=new Float32Array(m*k).map(()=>Math.random()*2-1), W=new Float32Array(n*k).map(()=>Math.random()*2-1);
  const h=a.sgemmPackB(W,{k,n,transB:true,dtype:'bf16'});
  const C=new Float32Array(m*n);
  a.sgemmPacked(A,h,C,{m,k,n});
  let maxe=0;
  for(let i=0;i<m;i++)for(let j=0;j<n;j++){let s=0,sa=0;for(let q=0;q<k;q++){const p=bf(A[i*k+q])*bf(W[j*k+q]);s+=p;sa+=Math.abs(p);}
   const e=Math.abs(C[i*n+j]-s)/(sa*(k+4)*2**-24); maxe=Math.max(maxe,e);}
  console.log(isa,m,k,n,a.packedInfo(h),'err/bound',maxe.toFixed(3));
 }
}
