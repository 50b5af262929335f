import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker, type WorkerOptions } from 'node:worker_threads'
import { QueryBusyError, QueryTimeoutError, StoreReadError, withCause } from '../../errors.js'
import type { ReadOp, ReadOps } from './reader.js'
import type { LeaseReadOp, LeaseReadOps } from './lease-reader.js'
import type { SnapshotReadOp, SnapshotReadOps } from './snapshots.js'
import type { ReadReply, ReaderWorkerData } from './reader-worker.js'

export interface ReaderPoolOptions extends Omit<ReaderWorkerData, 'claims' | 'marker'> {
  workers: number
  queryTimeoutMs: number
  maxQueued: number
}

/** What a reader worker answers: event reads (reader.ts), lease reads (lease-reader.ts) and snapshot pages (snapshots.ts). */
export type PoolOps = ReadOps & LeaseReadOps & SnapshotReadOps
export type PoolOp = ReadOp | LeaseReadOp | SnapshotReadOp

interface Job {
  id: number
  /** Its claim cell: holds `id` until a worker swaps in its marker. */
  cell: number
  op: PoolOp
  args: unknown[]
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}
/** A worker; `ready` once its connection is open. `marker`: what it writes into a read's claim. */
interface Slot { worker: Worker, ready: boolean, marker: number }

/**
 * A claim cell holds 0 (free), the id of the read posted with it (> 0, unclaimed), a worker's
 * marker (< -1, claimed) or CANCELLED (its deadline passed unclaimed). A worker swaps the read's
 * id for its marker, so a message still queued in a worker after its read was answered, and its
 * cell given to another read, finds another value and is skipped.
 */
const CANCELLED = -1

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
 * Worker threads answering the SQLite store's event and lease reads, each with its own read-only
 * connection to the WAL file (readers never block the writer, nor it them). A read that passes
 * its deadline is answered KEATRAIL_ERR_QUERY_TIMEOUT at once (and the worker running it is
 * terminated and replaced); reads beyond `maxQueued` waiting are refused KEATRAIL_ERR_QUERY_BUSY.
 *
 * Every read is posted to every worker, and the first free one claims it (an atomic swap of its
 * claim cell in shared memory); the others skip it. Handing a read to a worker once the last one
 * answered needed the main thread in between — which, while a batch of 5,000 events is written
 * (~80 ms), is busy: two workers then served ~20 reads a second however cheap, and reads queued
 * for seconds (bench/e2e --serve: a 24 h histogram, p50 1.9 s at 50/s during ingestion, against
 * ~50 ms answered on the main thread).
 *
 * Worker.terminate() stops a worker only once SQLite's current step returns to JavaScript: until
 * then the terminated thread keeps its core. The CIDR index and the parser's caps keep steps short.
 */
export class ReaderPool {
  private readonly slots: Slot[] = []
  /** Reads not answered yet, claimed or not, by id. */
  private readonly pending = new Map<number, Job>()
  /** One cell per read that can be in flight: `workers` running and `maxQueued` waiting. */
  private readonly claims: Int32Array
  private readonly freeCells: number[]
  private nextId = 1
  private nextMarker = -2
  private closed = false
  /** How long the last terminated worker took to stop (ms), for tests and benchmarks. */
  lastTerminationMs: number | undefined
  /** Terminated workers whose SQLite step has not returned yet: they still hold a core each. */
  private stopping = 0
  /** Why the last worker started could not open the database; cleared once one does. */
  private startFailure: string | undefined

  constructor (private readonly opts: ReaderPoolOptions) {
    const cells = opts.workers + opts.maxQueued
    this.claims = new Int32Array(new SharedArrayBuffer(cells * 4))
    this.freeCells = Array.from({ length: cells }, (_, i) => cells - 1 - i)
  }

  /** Workers running now (started on demand, up to `workers`). */
  get size (): number { return this.slots.length }
  /** Terminated workers still finishing their SQLite step. */
  get terminating (): number { return this.stopping }
  /** Why the pool cannot answer (closed, or its workers cannot open the database), without queueing a read; undefined when it can. */
  get unhealthy (): string | undefined { return this.closed ? 'the store is closed' : this.startFailure }

  async run<K extends PoolOp> (op: K, args: Parameters<PoolOps[K]>): Promise<ReturnType<PoolOps[K]>> {
    if (this.closed) throw new StoreReadError('sqlite', 'the store is closed')
    // As many running as there are workers, and maxQueued waiting.
    const cell = this.freeCells.pop()
    if (this.pending.size >= this.slots.length + this.opts.maxQueued || cell === undefined) {
      if (cell !== undefined) this.freeCells.push(cell)
      throw new QueryBusyError(this.pending.size - this.slots.length)
    }
    return await new Promise((resolve, reject) => {
      const id = this.nextId
      this.nextId = id >= 0x7fff_fff0 ? 1 : id + 1
      const job: Job = { id, cell, op, args, resolve: resolve as (v: unknown) => void, reject, timer: setTimeout(() => { this.expire(job) }, this.opts.queryTimeoutMs) }
      Atomics.store(this.claims, cell, id)
      this.pending.set(id, job)
      // A worker with a read in flight keeps the process alive (a CLI awaiting its answer); an idle one does not.
      for (const s of this.slots) { s.worker.ref(); if (s.ready) this.post(s, job) }
      this.spawnIfNeeded()
    })
  }

  private post (slot: Slot, job: Job): void {
    slot.worker.postMessage({ id: job.id, cell: job.cell, op: job.op, args: job.args })
  }

  /** Whether no worker has taken `job` yet. */
  private unclaimed (job: Job): boolean {
    return Atomics.load(this.claims, job.cell) === job.id
  }

  /**
   * Workers start on demand, one at a time: another when every one is up and reads outnumber
   * them (a starting worker is sent the reads still unclaimed once its connection is open).
   */
  private spawnIfNeeded (): void {
    if (this.canSpawn() && this.slots.every((s) => s.ready) && this.pending.size > this.slots.length) this.spawn()
  }

  /**
   * Room for another worker: at most `workers` serving, and while as many terminated ones still
   * run their last step, none (reads wait, or time out): threads stay ≤ 2 × workers however
   * many reads pass their deadline.
   */
  private canSpawn (): boolean {
    return !this.closed && this.slots.length < this.opts.workers && this.stopping < this.opts.workers
  }

  private spawn (): Slot {
    const marker = this.nextMarker++
    const data: ReaderWorkerData = { path: this.opts.path, layout: this.opts.layout, busyTimeoutMs: this.opts.busyTimeoutMs, cacheMiB: this.opts.cacheMiB, nice: this.opts.nice, claims: this.claims, marker }
    const worker = startWorker({
      workerData: data,
      // A page of 1,000 events is ~1 MB of objects; the worker's heap is bounded apart from the main one.
      resourceLimits: { maxOldGenerationSizeMb: 128 }
    })
    const slot: Slot = { worker, ready: false, marker }
    worker.on('message', (reply: ReadReply | 'ready') => {
      if (reply !== 'ready') { this.settle(reply); return }
      slot.ready = true
      this.startFailure = undefined
      // What was asked before it started, and nobody took yet.
      for (const job of this.pending.values()) if (this.unclaimed(job)) this.post(slot, job)
      this.spawnIfNeeded()
    })
    worker.on('error', (err) => { this.lost(slot, err) })
    worker.on('exit', (code) => { this.lost(slot, new Error(`reader worker exited with code ${code}`)) })
    if (this.pending.size === 0) worker.unref()
    this.slots.push(slot)
    return slot
  }

  private settle (reply: ReadReply): void {
    const job = this.pending.get(reply.id)
    // Answered already (its deadline passed): nothing to do.
    if (job === undefined) return
    this.finish(job)
    if (reply.ok) job.resolve(reply.value)
    else job.reject(fromReply(reply.error))
  }

  private finish (job: Job): void {
    this.pending.delete(job.id)
    clearTimeout(job.timer)
    Atomics.store(this.claims, job.cell, 0)
    this.freeCells.push(job.cell)
    if (this.pending.size === 0) for (const s of this.slots) s.worker.unref()
  }

  /** The deadline: answered now; the worker running it, if one took it, is stopped and another takes its place. */
  private expire (job: Job): void {
    const holder = Atomics.compareExchange(this.claims, job.cell, job.id, CANCELLED)
    this.finish(job)
    const slot = holder === job.id ? undefined : this.slots.find((s) => s.marker === holder)
    if (slot !== undefined) {
      this.remove(slot)
      const t0 = performance.now()
      this.stopping++
      // Resolves once SQLite's step returns to JavaScript in that thread: how long the
      // terminated read kept its core (~1-3 s for 32 ranges over 50-100k events in the tests).
      void slot.worker.terminate().then(() => {
        this.lastTerminationMs = performance.now() - t0
        this.stopping--
        this.spawnIfNeeded()
      })
      // The replacement starts now, so that it is ready for the next read.
      if (this.canSpawn()) this.spawn()
    }
    job.reject(new QueryTimeoutError(this.opts.queryTimeoutMs))
  }

  /** A worker that failed or exited on its own: the read it held fails, later reads get a new worker. */
  private lost (slot: Slot, err: Error): void {
    if (!this.remove(slot)) return
    const failed = (): Error => withCause(new StoreReadError('sqlite', `reader worker failed: ${err.message}`), err)
    for (const job of [...this.pending.values()]) {
      if (Atomics.load(this.claims, job.cell) !== slot.marker) continue
      this.finish(job)
      job.reject(failed())
    }
    // A worker that could not even open the database: the waiting reads fail too, rather than
    // a new worker failing the same way for each of them.
    if (!slot.ready) {
      this.startFailure = `reader worker failed: ${err.message}`
      for (const job of [...this.pending.values()]) { this.finish(job); job.reject(failed()) }
    }
    this.spawnIfNeeded()
  }

  private remove (slot: Slot): boolean {
    const i = this.slots.indexOf(slot)
    if (i < 0) return false
    this.slots.splice(i, 1)
    return true
  }

  async close (): Promise<void> {
    this.closed = true
    for (const job of [...this.pending.values()]) {
      this.finish(job)
      job.reject(new StoreReadError('sqlite', 'the store is closed'))
    }
    const slots = this.slots.splice(0)
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
