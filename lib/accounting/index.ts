// LOCAL STUB (not committed): RDP accountant at q=1 only-ish, for development.
export interface StepEvent { noiseMultiplier: number; sampleRate: number; mechanism?: string }
abstract class Base {
  ledger: Array<{ noiseMultiplier: number; sampleRate: number; count: number }> = [];
  abstract readonly kind: string;
  step(e: StepEvent, count = 1): void { this.ledger.push({ noiseMultiplier: e.noiseMultiplier, sampleRate: e.sampleRate, count }); }
  getEpsilon(delta: number): number {
    let best = Infinity;
    for (let a = 1.5; a < 256; a += 0.5) {
      let rdp = 0; for (const l of this.ledger) rdp += l.count * Math.min(a / (2 * l.noiseMultiplier ** 2), 2 * l.sampleRate ** 2 * a / l.noiseMultiplier ** 2);
      best = Math.min(best, rdp + Math.log(1 / delta) / (a - 1));
    }
    return best;
  }
  toJSON(): unknown { return { kind: this.kind, ledger: this.ledger }; }
}
export class RdpAccountant extends Base { readonly kind = 'rdp'; static fromJSON(j: any): RdpAccountant { const a = new RdpAccountant(); a.ledger = j.ledger.map((x: any) => ({ ...x })); return a; } }
export class PldAccountant extends Base { readonly kind = 'pld'; static fromJSON(j: any): PldAccountant { const a = new PldAccountant(); a.ledger = j.ledger.map((x: any) => ({ ...x })); return a; } }
export function accountantFromJSON(j: any): RdpAccountant | PldAccountant { return j.kind === 'rdp' ? RdpAccountant.fromJSON(j) : PldAccountant.fromJSON(j); }
export function getNoiseMultiplier(o: { targetEpsilon: number; targetDelta: number; sampleRate: number; steps?: number; epochs?: number; accountant?: 'pld' | 'rdp' }): number {
  const steps = o.steps ?? Math.ceil((o.epochs ?? 1) / o.sampleRate);
  let lo = 0.1, hi = 100;
  for (let i = 0; i < 60; i++) { const mid = (lo + hi) / 2; const a = new RdpAccountant(); a.step({ noiseMultiplier: mid, sampleRate: o.sampleRate }, steps); if (a.getEpsilon(o.targetDelta) > o.targetEpsilon) lo = mid; else hi = mid; }
  return hi;
}
