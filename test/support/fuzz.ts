/**
 * Seeded PRNG, byte mutators and a decoder fuzz harness.
 *
 * Everything is deterministic for a given seed, so a failure message that names the seed and
 * iteration can be replayed exactly.
 *
 * @example
 * await fuzzDecoder(bootstrap, (b) => decodeSuperBlock(b), { iterations: 2000, allowed: [FormatError] });
 */
import assert from "node:assert/strict";

/** mulberry32: a tiny 32-bit PRNG. Same seed, same sequence. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Next unsigned 32-bit integer. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }
  /** Integer in [0, max) (max ≤ 2^32). */
  int(max: number): number {
    if (max <= 0) return 0;
    return Math.floor(this.float() * max);
  }
  /** Integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0, "Cannot pick from an empty list");
    return items[this.int(items.length)];
  }
  /** Fills `out` with pseudo-random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array {
    const whole = out.length & ~3;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < whole; i += 4) view.setUint32(i, this.u32(), true);
    if (whole < out.length) {
      const last = this.u32();
      for (let i = whole; i < out.length; i++) out[i] = (last >>> ((i - whole) * 8)) & 0xff;
    }
    return out;
  }
  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}

/** Convenience constructor: `mulberry32(seed).u32()`. */
export function mulberry32(seed: number): Prng {
  return new Prng(seed);
}

/** A mutation applied to a copy of the input; `describe` says what was done (for failure messages). */
export interface Mutation {
  bytes: Uint8Array;
  describe: string;
}

export type Mutator = (input: Uint8Array, rng: Prng, region?: Region) => Mutation;

/** Half-open byte range [start, end) to focus mutations on (e.g. the superblock). */
export interface Region {
  start: number;
  end: number;
}

function pickOffset(len: number, width: number, rng: Prng, region?: Region): number {
  const start = Math.max(0, Math.min(region?.start ?? 0, len));
  const end = Math.max(start, Math.min(region?.end ?? len, len) - width + 1);
  return end > start ? start + rng.int(end - start) : start;
}

/** Cuts the input at a random length (possibly 0). */
export const truncate: Mutator = (input, rng, region) => {
  const at = region ? pickOffset(input.length, 0, rng, region) : rng.int(input.length + 1);
  return { bytes: input.slice(0, at), describe: `truncate to ${at}` };
};

/** Flips 1..8 random bits. */
export const flipBits: Mutator = (input, rng, region) => {
  const out = input.slice();
  if (out.length === 0) return { bytes: out, describe: "flip (empty input)" };
  const n = rng.range(1, 8);
  const offs: string[] = [];
  for (let i = 0; i < n; i++) {
    const off = pickOffset(out.length, 1, rng, region);
    const bit = rng.int(8);
    out[off] ^= 1 << bit;
    offs.push(`${off}.${bit}`);
  }
  return { bytes: out, describe: `flip bits ${offs.join(",")}` };
};

const HUGE_U32 = [0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff, 0x10000, 0x1000, 0];

/** Overwrites an (unaligned) u32 LE with a huge or boundary value. */
export const overwriteU32: Mutator = (input, rng, region) => {
  const out = input.slice();
  if (out.length < 4) return { bytes: out, describe: "u32 (input too short)" };
  const off = pickOffset(out.length, 4, rng, region);
  const v = rng.int(4) === 0 ? rng.u32() : rng.pick(HUGE_U32);
  new DataView(out.buffer).setUint32(off, v, true);
  return { bytes: out, describe: `u32@${off}=0x${v.toString(16)}` };
};

const HUGE_U64 = [
  0xffffffffffffffffn,
  0x8000000000000000n,
  0x7fffffffffffffffn,
  0x20000000000000n, // 2^53
  0x1fffffffffffffn, // 2^53-1
  0x100000000n,
  0xffffffffn,
];

/** Overwrites an (unaligned) u64 LE with a huge or boundary value. */
export const overwriteU64: Mutator = (input, rng, region) => {
  const out = input.slice();
  if (out.length < 8) return { bytes: out, describe: "u64 (input too short)" };
  const off = pickOffset(out.length, 8, rng, region);
  const v = rng.pick(HUGE_U64);
  new DataView(out.buffer).setBigUint64(off, v, true);
  return { bytes: out, describe: `u64@${off}=0x${v.toString(16)}` };
};

export const DEFAULT_MUTATORS: readonly Mutator[] = [truncate, flipBits, overwriteU32, overwriteU64];

/** Applies one random mutator from `mutators`. */
export function mutate(input: Uint8Array, rng: Prng, mutators: readonly Mutator[] = DEFAULT_MUTATORS, region?: Region): Mutation {
  return rng.pick(mutators)(input, rng, region);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ErrorClass = abstract new (...args: any[]) => Error;

export interface FuzzOptions {
  iterations?: number;
  seed?: number;
  /** Error classes a decoder may throw on bad input (instanceof check). Anything else fails the fuzz run. */
  allowed: readonly ErrorClass[];
  mutators?: readonly Mutator[];
  /** Restrict mutations to this byte range (truncate still cuts the whole input). */
  region?: Region;
  /** Apply up to this many mutations per iteration (default 1). */
  maxStack?: number;
}

export interface FuzzStats {
  iterations: number;
  /** Mutated inputs the decoder accepted without throwing. */
  accepted: number;
  /** Count of thrown errors per class name. */
  rejected: Record<string, number>;
}

/**
 * Mutates `bytes` `iterations` times and runs `decode` on each variant. Fails (AssertionError naming
 * seed, iteration and mutations) if `decode` throws anything that is not an instance of `allowed`.
 * `decode` may be sync or async.
 */
export async function fuzzDecoder(
  bytes: Uint8Array,
  decode: (input: Uint8Array) => unknown,
  options: FuzzOptions,
): Promise<FuzzStats> {
  const iterations = options.iterations ?? 1000;
  const seed = options.seed ?? 0x5eed;
  const rng = new Prng(seed);
  const stats: FuzzStats = { iterations, accepted: 0, rejected: {} };
  for (let i = 0; i < iterations; i++) {
    let current = bytes;
    const steps: string[] = [];
    const n = rng.range(1, Math.max(1, options.maxStack ?? 1));
    for (let k = 0; k < n; k++) {
      const m = mutate(current, rng, options.mutators, options.region);
      current = m.bytes;
      steps.push(m.describe);
    }
    try {
      await decode(current);
      stats.accepted++;
    } catch (err) {
      const ok = options.allowed.some((cls) => err instanceof cls);
      if (!ok) {
        const e = err as Error;
        assert.fail(
          `fuzzDecoder: disallowed ${e?.constructor?.name ?? typeof err} at seed=${seed} iteration=${i} ` +
            `(${steps.join(" then ")}): ${e?.message ?? String(err)}\n${e?.stack ?? ""}`,
        );
      }
      const name = (err as Error).constructor.name;
      stats.rejected[name] = (stats.rejected[name] ?? 0) + 1;
    }
  }
  return stats;
}
