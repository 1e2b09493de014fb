import { formatInspection, inspectImage } from "../local/inspect.ts";
import { openRafs } from "../rafs/open.ts";
import { readInput } from "./files.ts";
import { emit } from "./output.ts";

export async function runInspect(bootstrap: string, flags: { path?: string; json?: boolean }): Promise<void> {
  const image = openRafs(await readInput(bootstrap, "bootstrap"));
  const result = inspectImage(image, { path: flags.path });
  emit(flags, result, () => formatInspection(result));
}
