import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { HEAP_GROWING_PERCENT, growthPercent, operatorChoseGrowth } from '../src/heap.js'
import { packageRoot } from '../src/paths.js'

describe('heap tuning', () => {
  it('knows when the operator gave V8 their own growth', () => {
    expect(operatorChoseGrowth(['--max-old-space-size=256'])).toBe(false)
    expect(operatorChoseGrowth(['--heap-growing-percent=30'])).toBe(true)
    expect(operatorChoseGrowth(['--heap_growing_percent=30'])).toBe(true)
    expect(operatorChoseGrowth(['--heap-growing-percent', '30'])).toBe(true)
    expect(operatorChoseGrowth(['--heap-growing-percentage=30'])).toBe(false)
  })

  it('allows at most 32 MiB of growth on top of the live heap, and leaves large heaps to V8', () => {
    const MiB = 1024 * 1024
    expect([10, 32, 35, 64, 80, 81, 150].map((m) => growthPercent(m * MiB))).toEqual([100, 100, 91, 50, 40, 0, 0])
  })

  // The process entry's tuning (bin/keatrail.js: after V8 started) in a child process that
  // churns a live set of `live` small objects, yielding as a service does (the heap's size is
  // read after each full collection, between tasks); its full collections counted (--trace-gc).
  const entry = (): string => `data:text/javascript,${encodeURIComponent(`import { tuneHeap } from '${pathToFileURL(join(packageRoot(), 'dist', 'src', 'heap.js')).href}'; tuneHeap()`)}`
  const fullCollections = (live: number, total: number, flags: string[]): number => {
    const script = `const keep = []; for (let i = 0; i < ${total}; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > ${live}) keep.splice(0, ${live / 10}); if (i % 10000 === 0) await new Promise(setImmediate) }`
    const r = spawnSync(process.execPath, ['--max-old-space-size=256', '--trace-gc', ...flags, '--import', entry(), '--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    return r.stdout.split('Mark-Compact').length - 1
  }

  it('takes effect once V8 runs, as the flag given at start would, and leaves the operator\'s own alone', () => {
    // ~30 MB live. Here: tuned 9, the flag given at start 8, the operator's 10 % 14 or more.
    const tuned = fullCollections(400_000, 6_000_000, [])
    const atStart = fullCollections(400_000, 6_000_000, [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`])
    const operator = fullCollections(400_000, 6_000_000, ['--heap-growing-percent=10'])
    expect(tuned).toBeGreaterThan(0)
    // Counts move by one or two with the machine's load (concurrent marking): the margins.
    expect(Math.abs(tuned - atStart)).toBeLessThanOrEqual(2)
    expect(operator).toBeGreaterThan(tuned + 1)
  })

  it('leaves the choice to V8 while the live heap is large, and takes it back once small again', () => {
    // ~150 MB live (over TUNED_BELOW_BYTES), then ~3 MB and a full collection: what tuneHeap has
    // set after each (read after full collections, so independent of how many there were).
    const script = `import { tuneHeap } from '${pathToFileURL(join(packageRoot(), 'dist', 'src', 'heap.js')).href}'
      const t = tuneHeap([])
      const states = [t.tuned]
      const churn = async (live, total) => { const keep = []; for (let i = 0; i < total; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > live) keep.splice(0, live / 10); if (i % 10000 === 0) await new Promise(setImmediate) } return keep.length }
      await churn(2000000, 6000000); states.push(t.tuned)
      await churn(40000, 1000000); globalThis.gc(); await new Promise(setImmediate); await new Promise(setImmediate); states.push(t.tuned)
      console.log(JSON.stringify(states))`
    const r = spawnSync(process.execPath, ['--max-old-space-size=256', '--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual([true, false, true])
  })

  it('leaves a heap without a cap to V8 (it grows up to 4× there)', () => {
    const script = `import { tuneHeap } from '${pathToFileURL(join(packageRoot(), 'dist', 'src', 'heap.js')).href}'; console.log(JSON.stringify(tuneHeap([]) === undefined))`
    const run = (flags: string[]): unknown => JSON.parse(spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8' }).stdout)
    expect(run(['--max-old-space-size=4096'])).toBe(true)
    expect(run(['--max-old-space-size=256'])).toBe(false)
  })
})
