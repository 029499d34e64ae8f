/**
 * parseTuneSpec (the `--tune-configs` candidates of bench/use_lite_utility.ts): every key maps
 * to its setting with the value given, `sigma=0` (the non-private diagnostic) is kept as 0 and
 * not confused with an absent key, and malformed candidates throw a typed error naming the
 * option.
 */
import { InvalidArgumentError } from '../lib/errors';
import { parseTuneSpec } from '../lib/models/use_lite/tune_spec';

describe('parseTuneSpec', () => {
  it('maps every key to its setting', () => {
    expect(
      parseTuneSpec(
        'lr=1e-2,headLr=3e-2,sched=linear,warmup=0.06,batch=250,ep=3,clip=1e9,rank=4,alpha=8,' +
          'targets=q_proj+v_proj,pubEp=2,pubLr=3e-3,pubHeadLr=1e-2,sigma=0.5,bc=0.1',
      ),
    ).toEqual({
      lr: 0.01,
      headLr: 0.03,
      schedule: 'linear',
      warmup: 0.06,
      batch: 250,
      epochs: 3,
      clip: 1e9,
      rank: 4,
      alpha: 8,
      targets: ['q_proj', 'v_proj'],
      pubEpochs: 2,
      pubLr: 0.003,
      pubHeadLr: 0.01,
      sigma: 0.5,
      adamBc: 0.1,
    });
  });

  it('keeps sigma = 0 and leaves absent keys undefined', () => {
    const s = parseTuneSpec('lr=3e-3,sigma=0');
    expect(s.sigma).toBe(0);
    expect('sigma' in s).toBe(true);
    expect(s.clip).toBeUndefined();
    expect(parseTuneSpec('lr=3e-3').sigma).toBeUndefined();
  });

  it.each([
    ['foo=1', /unknown key 'foo'/],
    ['lr', /not key=value/],
    ['=3', /not key=value/],
    ['sigma=-1', /sigma must be a finite number >= 0/],
    ['sigma=', /sigma must be/],
    ['sigma=Infinity', /sigma must be/],
    ['clip=0', /clip must be a finite number > 0/],
    ['lr=abc', /lr must be/],
    ['batch=-5', /batch must be/],
    ['sched=step', /sched must be constant, linear or cosine/],
    ['targets=', /targets is empty/],
  ])('rejects %s', (label, why) => {
    let err: unknown;
    try {
      parseTuneSpec(label);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe('tune-configs');
    expect((err as Error).message).toMatch(why);
  });
});
