import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'

/**
 * While the heap is small, V8's old generation may grow to twice its live size before the next
 * full collection (V8 picks 1.1–4× from its own speed estimates; keatrail's pipelines got ~1.4×).
 *
 * Why: every event lives through its batch's queue and write (~5,000 events in flight), so each
 * is promoted to the old generation, and at ~1.4× headroom a full collection ran every ~13 MB
 * promoted (44 of them for 300,000 events, ~35 MB live): their marking took ~19 % of the CPU of
 * keatrail → Elasticsearch (`--trace-gc`, bench/e2e). At 2× the same run spent 37.8 instead of
 * 43.7 CPU s per million events (seven alternating rounds) for +20–25 MiB of RSS
 * (docs/BENCHMARKS.md, issue 21, session 21).
 */
export const HEAP_GROWING_PERCENT = 100

/**
 * Above this much live heap (after a full collection) V8 chooses again. A flood that keeps a
 * large heap live (20,000 forged lease wipes: test/security/wipe-flood.test.ts) peaked at 280 MiB
 * RSS with 2× throughout (bound 300; 245 without): memory is kept where it is scarce, CPU saved
 * where the heap is the pipeline's usual ~35 MB.
 */
export const TUNED_BELOW_BYTES = 64 * 1024 * 1024

/**
 * Tuned only under a heap cap at most this large (the launchers' `--max-old-space-size=256`).
 * Without a cap V8 already lets a heap grow up to 4× (the review measured a churned live set: 4
 * full collections with V8's choice, 9 at a fixed 2×; under the 256 MiB cap 22 against 10).
 */
export const TUNED_UNDER_LIMIT_BYTES = 1024 * 1024 * 1024

/** A `gc` performance entry (Node's types leave `detail` out of PerformanceEntry). */
type GcEntry = PerformanceEntry & { detail?: { kind?: number } }

/** V8's own choice (`--heap-growing-percent=0`: the factor from its estimates). */
const V8_CHOICE = '--heap-growing-percent=0'

/**
 * Applies HEAP_GROWING_PERCENT while the live heap stays under TUNED_BELOW_BYTES, in a process
 * whose heap is capped (TUNED_UNDER_LIMIT_BYTES), unless the operator gave V8 their own
 * (`node --heap-growing-percent=…`). The flag is the process's: reader worker threads get it
 * too (their heaps are small); only the main thread's size switches it. Called by the process entry
 * (bin/keatrail.js) and by benchmarks measuring what it runs. V8 reads the flag at each
 * collection, so setting it once started takes effect; the size is read after each full
 * collection (a `gc` performance entry: a handful a second at most).
 */
export function tuneHeap (execArgv: readonly string[] = process.execArgv): HeapTuning | undefined {
  const flag = heapFlag(execArgv)
  if (flag === undefined || getHeapStatistics().heap_size_limit > TUNED_UNDER_LIMIT_BYTES) return undefined
  let tuned = false
  const set = (on: boolean): void => {
    if (on === tuned) return
    setFlagsFromString(on ? flag : V8_CHOICE)
    tuned = on
  }
  set(true)
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as GcEntry).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) set(getHeapStatistics().used_heap_size <= TUNED_BELOW_BYTES)
    }
  }).observe({ entryTypes: ['gc'] })
  return { get tuned () { return tuned } }
}

/** What tuneHeap set: HEAP_GROWING_PERCENT (true) or V8's own choice, as of the last full collection. */
export interface HeapTuning { readonly tuned: boolean }

/** The V8 flag tuneHeap sets for a process started with `execArgv` (none: the operator chose). */
export function heapFlag (execArgv: readonly string[]): string | undefined {
  return execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a)) ? undefined : `--heap-growing-percent=${HEAP_GROWING_PERCENT}`
}
