import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker, type WorkerOptions } from 'node:worker_threads'
import { QueryBusyError, QueryTimeoutError, StoreReadError, withCause } from '../../errors.js'
import type { ReadOp, ReadOps } from './reader.js'
import type { ReadReply, ReaderWorkerData } from './reader-worker.js'

export interface ReaderPoolOptions extends ReaderWorkerData {
  workers: number
  queryTimeoutMs: number
  maxQueued: number
}

interface Job {
  op: ReadOp
  args: unknown[]
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
  slot?: Slot
}
/** A worker; `ready` once its connection is open (before that, reads wait in the queue). */
interface Slot { worker: Worker, ready: boolean, job?: Job }

// Compiled (dist/…/reader-pool.js) the worker is its .js sibling; from the TypeScript sources
// (vitest, tsx) it is the .ts one, loaded through tsx's API: Node 20 ignores `--import tsx` in a
// worker's execArgv ("Unknown file extension .ts").
const FROM_SOURCES = import.meta.url.endsWith('.ts')

function startWorker (options: WorkerOptions): Worker {
  if (!FROM_SOURCES) return new Worker(new URL('./reader-worker.js', import.meta.url), options)
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs')).href
  const target = new URL('./reader-worker.ts', import.meta.url).href
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(target)}) })`, { ...options, eval: true })
}

/**
 * Worker threads answering the SQLite store's event reads, each with its own read-only
 * connection to the WAL file (readers never block the writer, nor it them). A read that passes
 * its deadline is answered KEATRAIL_ERR_QUERY_TIMEOUT at once and its worker is terminated and
 * replaced; reads beyond `maxQueued` waiting are refused KEATRAIL_ERR_QUERY_BUSY.
 *
 * Worker.terminate() stops a worker only once SQLite's current step returns to JavaScript: until
 * then the terminated thread keeps its core. The CIDR index and the parser's caps keep steps short.
 */
export class ReaderPool {
  private readonly slots: Slot[] = []
  private readonly queue: Job[] = []
  private closed = false
  /** How long the last terminated worker took to stop (ms), for tests and benchmarks. */
  lastTerminationMs: number | undefined
  /** Terminated workers whose SQLite step has not returned yet: they still hold a core each. */
  private stopping = 0
  /** Why the last worker started could not open the database; cleared once one does. */
  private startFailure: string | undefined

  constructor (private readonly opts: ReaderPoolOptions) {}

  /** Workers running now (started on demand, up to `workers`). */
  get size (): number { return this.slots.length }
  /** Terminated workers still finishing their SQLite step. */
  get terminating (): number { return this.stopping }
  /** Why the pool cannot answer (closed, or its workers cannot open the database), without queueing a read; undefined when it can. */
  get unhealthy (): string | undefined { return this.closed ? 'the store is closed' : this.startFailure }

  async run<K extends ReadOp> (op: K, args: Parameters<ReadOps[K]>): Promise<ReturnType<ReadOps[K]>> {
    if (this.closed) throw new StoreReadError('sqlite', 'the store is closed')
    const free = this.slots.some((s) => s.ready && s.job === undefined)
    if (!free && this.queue.length >= this.opts.maxQueued) throw new QueryBusyError(this.queue.length)
    return await new Promise((resolve, reject) => {
      const job: Job = { op, args, resolve: resolve as (v: unknown) => void, reject, timer: setTimeout(() => { this.expire(job) }, this.opts.queryTimeoutMs) }
      this.queue.push(job)
      this.dispatch()
    })
  }

  private dispatch (): void {
    if (this.closed) return
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => s.ready && s.job === undefined)
      if (slot === undefined) {
        // Started on demand; a starting worker takes the queue once its connection is open.
        if (this.canSpawn() && !this.slots.some((s) => !s.ready)) this.spawn()
        return
      }
      const job = this.queue.shift() as Job
      job.slot = slot
      slot.job = job
      // A worker with a read in flight keeps the process alive (a CLI awaiting its answer); an idle one does not.
      slot.worker.ref()
      slot.worker.postMessage({ op: job.op, args: job.args })
    }
  }

  /**
   * Room for another worker: at most `workers` serving, and while as many terminated ones still
   * run their last step, none (reads wait, or time out in the queue): threads stay ≤ 2 × workers
   * however many reads pass their deadline.
   */
  private canSpawn (): boolean {
    return !this.closed && this.slots.length < this.opts.workers && this.stopping < this.opts.workers
  }

  private spawn (): Slot {
    const data: ReaderWorkerData = { path: this.opts.path, layout: this.opts.layout, busyTimeoutMs: this.opts.busyTimeoutMs, cacheMiB: this.opts.cacheMiB, nice: this.opts.nice }
    const worker = startWorker({
      workerData: data,
      // A page of 1,000 events is ~1 MB of objects; the worker's heap is bounded apart from the main one.
      resourceLimits: { maxOldGenerationSizeMb: 128 }
    })
    const slot: Slot = { worker, ready: false }
    worker.on('message', (reply: ReadReply | 'ready') => {
      if (reply !== 'ready') { this.settle(slot, reply); return }
      slot.ready = true
      this.startFailure = undefined
      this.dispatch()
    })
    worker.on('error', (err) => { this.lost(slot, err) })
    worker.on('exit', (code) => { this.lost(slot, new Error(`reader worker exited with code ${code}`)) })
    worker.unref()
    this.slots.push(slot)
    return slot
  }

  private settle (slot: Slot, reply: ReadReply): void {
    const job = slot.job
    if (job === undefined) return
    slot.job = undefined
    slot.worker.unref()
    clearTimeout(job.timer)
    if (reply.ok) job.resolve(reply.value)
    else job.reject(fromReply(reply.error))
    this.dispatch()
  }

  /** The deadline: answered now; a running read's worker is stopped and another takes its place. */
  private expire (job: Job): void {
    const slot = job.slot
    if (slot === undefined) {
      const i = this.queue.indexOf(job)
      if (i >= 0) this.queue.splice(i, 1)
    } else {
      this.remove(slot)
      const t0 = performance.now()
      this.stopping++
      // Resolves once SQLite's step returns to JavaScript in that thread: how long the
      // terminated read kept its core (~1-3 s for 32 ranges over 50-100k events in the tests).
      void slot.worker.terminate().then(() => {
        this.lastTerminationMs = performance.now() - t0
        this.stopping--
        this.dispatch()
      })
      // The replacement starts now, so that it is ready for the next read.
      if (this.canSpawn()) this.spawn()
    }
    job.reject(new QueryTimeoutError(this.opts.queryTimeoutMs))
    this.dispatch()
  }

  /** A worker that failed or exited on its own: its read fails, later reads get a new worker. */
  private lost (slot: Slot, err: Error): void {
    if (!this.remove(slot)) return
    const failed = (): Error => withCause(new StoreReadError('sqlite', `reader worker failed: ${err.message}`), err)
    const job = slot.job
    if (job !== undefined) {
      clearTimeout(job.timer)
      job.reject(failed())
    }
    // A worker that could not even open the database: the waiting reads fail too, rather than
    // a new worker failing the same way for each of them.
    if (!slot.ready) {
      this.startFailure = `reader worker failed: ${err.message}`
      for (const j of this.queue.splice(0)) { clearTimeout(j.timer); j.reject(failed()) }
    }
    this.dispatch()
  }

  private remove (slot: Slot): boolean {
    const i = this.slots.indexOf(slot)
    if (i < 0) return false
    this.slots.splice(i, 1)
    return true
  }

  async close (): Promise<void> {
    this.closed = true
    for (const job of this.queue.splice(0)) {
      clearTimeout(job.timer)
      job.reject(new StoreReadError('sqlite', 'the store is closed'))
    }
    const slots = this.slots.splice(0)
    for (const s of slots) {
      if (s.job !== undefined) {
        clearTimeout(s.job.timer)
        s.job.reject(new StoreReadError('sqlite', 'the store is closed'))
      }
    }
    await Promise.all(slots.map(async (s) => await s.worker.terminate()))
  }
}

/** The worker's error as the main thread's: same code, status and message (the API answers with them). */
function fromReply (e: { message: string, code?: string, statusCode?: number, name: string }): Error {
  if (e.code === undefined) return new StoreReadError('sqlite', e.message)
  const err = new Error(e.message) as Error & { code: string, statusCode?: number }
  err.name = e.name
  err.code = e.code
  if (e.statusCode !== undefined) err.statusCode = e.statusCode
  return err
}
