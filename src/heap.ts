import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'

/**
 * While the heap is small, V8's old generation may grow by up to its live size (2×) before the
 * next full collection (V8 picks 1.1–4× from its own speed estimates; keatrail's pipelines got
 * ~1.4× under the launchers' 256 MiB cap).
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
 * The growth allowed on top of the live heap: a heap of `live` bytes may grow by
 * min(live, HEADROOM_BYTES). Where that is less than MIN_TUNED_PERCENT of it, V8 chooses. Floods
 * that keep a large heap live peaked near the RSS bound with 2× of any live size (20,000 forged
 * lease wipes, test/security/wipe-flood.test.ts: 280 MiB against 245, bound 300; still 274 in
 * CI with 2× below 64 MiB live): memory is kept where it is scarce, CPU saved where the heap is
 * the pipeline's usual ~35 MB.
 */
export const HEADROOM_BYTES = 32 * 1024 * 1024

/** Below this growth (percent of the live heap) V8's own choice (~37 % in the pipelines) is as good. */
export const MIN_TUNED_PERCENT = 40

/**
 * Tuned only under a heap cap at most this large (the launchers' `--max-old-space-size=256`).
 * Without a cap V8 already lets a heap grow up to 4× (the review measured a churned live set: 4
 * full collections with V8's choice, 9 at a fixed 2×; under the 256 MiB cap 22 against 10).
 */
export const TUNED_UNDER_LIMIT_BYTES = 1024 * 1024 * 1024

/** A `gc` performance entry (Node's types leave `detail` out of PerformanceEntry). */
type GcEntry = PerformanceEntry & { detail?: { kind?: number } }

/** The growth tuneHeap sets for a live heap of `liveBytes` (0: V8's own choice). */
export function growthPercent (liveBytes: number): number {
  const percent = Math.min(HEAP_GROWING_PERCENT, Math.floor(100 * HEADROOM_BYTES / Math.max(liveBytes, 1)))
  return percent < MIN_TUNED_PERCENT ? 0 : percent
}

/**
 * Applies growthPercent of the live heap (read after each full collection), in a process whose
 * heap is capped (TUNED_UNDER_LIMIT_BYTES), unless the operator gave V8 their own
 * (`node --heap-growing-percent=…`). Called by the process entry (bin/keatrail.js) and by
 * benchmarks measuring what it runs. V8 reads the flag at each collection, so setting it once
 * started takes effect; a `gc` performance entry comes a handful of times a second at most. The
 * flag is the process's: reader worker threads get it too (their heaps are small); only the main
 * thread's size sets it.
 */
export function tuneHeap (execArgv: readonly string[] = process.execArgv): HeapTuning | undefined {
  if (operatorChoseGrowth(execArgv) || getHeapStatistics().heap_size_limit > TUNED_UNDER_LIMIT_BYTES) return undefined
  let percent = -1
  const set = (next: number): void => {
    if (next === percent) return
    setFlagsFromString(`--heap-growing-percent=${next}`)
    percent = next
  }
  set(HEAP_GROWING_PERCENT)
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as GcEntry).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) set(growthPercent(getHeapStatistics().used_heap_size))
    }
  }).observe({ entryTypes: ['gc'] })
  return { get tuned () { return percent > 0 }, get percent () { return percent } }
}

/** What tuneHeap set, as of the last full collection: `percent` (0: V8's own choice). */
export interface HeapTuning { readonly tuned: boolean, readonly percent: number }

/** Whether a process started with `execArgv` was given its own `--heap-growing-percent` (V8 takes `-` or `_`). */
export function operatorChoseGrowth (execArgv: readonly string[]): boolean {
  return execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))
}
