/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by
 * source file, plus inclusive time of selected functions, so "where does create spend
 * its time" has numbers.
 *
 * Usage: node --import tsx bench/profile_summary.ts FILE.cpuprofile [top=25]
 * (`BENCH_CPU_PROF=DIR npm run bench` writes one profile per input and compressor.)
 */
import fs from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (!file) throw new Error("usage: profile_summary.ts FILE.cpuprofile [top]");
const top = Number(process.argv[3] ?? 25);
const prof = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfUs = new Map<number, number>();
prof.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const short = (url: string) => url.replace(/^file:\/\/.*?\/(src|node_modules|bench)\//, "$1/").replace(/^node:/, "node:");
const label = (n: Node) => `${n.callFrame.functionName || "(anonymous)"} ${short(n.callFrame.url)}${n.callFrame.url ? ":" + (n.callFrame.lineNumber + 1) : ""}`;

function tally(key: (n: Node) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const k = key(byId.get(id)!);
    m.set(k, (m.get(k) ?? 0) + us);
  }
  return [...m].sort((a, b) => b[1] - a[1]);
}

/** Inclusive time: a sample counts once for every distinct key on its stack. */
function inclusive(key: (n: Node) => string | undefined): [string, number][] {
  const m = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (k && !seen.has(k)) {
        seen.add(k);
        m.set(k, (m.get(k) ?? 0) + us);
      }
    }
  }
  return [...m].sort((a, b) => b[1] - a[1]);
}

const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled (wall ${((prof.endTime - prof.startTime) / 1e6).toFixed(2)} s)\n`);
console.log("self time by function:");
for (const [k, us] of tally(label).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
console.log("\nself time by file:");
for (const [k, us] of tally((n) => short(n.callFrame.url) || `(${n.callFrame.functionName})`).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
console.log("\ninclusive time by project function (src/):");
for (const [k, us] of inclusive((n) => (n.callFrame.url.includes("/src/") ? label(n) : undefined)).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
