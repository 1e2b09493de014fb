/** Assertions shared by codec tests. */
import assert from "node:assert/strict";
import { FormatError } from "../../src/internal/errors.ts";

/** Asserts that `fn` throws a FormatError naming exactly this struct, field and absolute offset. */
export function throwsFormat(fn: () => unknown, struct: string, field: string, offset: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.deepEqual([e.struct, e.field, e.offset], [struct, field, offset], e.message);
    return true;
  });
}
