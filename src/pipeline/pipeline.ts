import { setTimeout as sleep } from 'node:timers/promises'
import type { Store } from '../store/types.js'
import type { Batch, Log, Source } from './types.js'
import { LOG_CODES } from '../errors.js'
import { PIPELINE_DEFAULTS } from './config.js'

export interface PipelineOptions {
  /** Batches waiting for the store; a source's emit waits while it is full. */
  queueBatches?: number
  /** How long a shutdown may spend writing what is queued. */
  drainMs?: number
  log: Log
  /** Called after each successful store write with its duration (metrics). */
  onWrite?: (ms: number) => void
}

export interface PipelineCounters {
  batches: number
  stored: number
  duplicates: number
  deadLettered: number
  storeErrors: number
  queued: number
  /** Batches a source had to wait to hand over because the queue was full (backpressure). */
  backpressured: number
}

/**
 * sources → bounded queue → store. A batch is acknowledged to its source only after the store
 * has written it durably, so checkpoints never pass what is stored. A failed write is retried
 * (never acknowledged, never dropped) with capped backoff.
 */
export class Pipeline {
  readonly counters: PipelineCounters = { batches: 0, stored: 0, duplicates: 0, deadLettered: 0, storeErrors: 0, queued: 0, backpressured: 0 }
  private readonly queue: Batch[] = []
  private readonly capacity: number
  private wakeSink: (() => void) | undefined
  private readonly spaceWaiters: Array<() => void> = []

  constructor (private readonly store: Store, private readonly opts: PipelineOptions) {
    this.capacity = opts.queueBatches ?? PIPELINE_DEFAULTS.queueBatches
  }

  /** Runs until `signal` aborts, then drains the queue (within drainMs) and saves checkpoints. */
  async run (sources: Source[], signal: AbortSignal): Promise<void> {
    const stopSources = new AbortController()
    signal.addEventListener('abort', () => stopSources.abort(), { once: true })
    const emit = async (batch: Batch): Promise<void> => {
      if (this.queue.length >= this.capacity) this.counters.backpressured++
      while (this.queue.length >= this.capacity && !stopSources.signal.aborted) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve))
      }
      // Stopping: the batch is not queued and so never acknowledged; it is read again next start.
      if (stopSources.signal.aborted) return
      this.queue.push(batch)
      this.counters.queued = this.queue.length
      this.wakeSink?.()
    }
    stopSources.signal.addEventListener('abort', () => { for (const w of this.spaceWaiters.splice(0)) w() }, { once: true })
    const running = sources.map(async (s) => {
      try {
        await s.run(emit, stopSources.signal)
      } catch (err) {
        this.opts.log.error(LOG_CODES.source, 'Source stopped with an error.', { source: s.name, error: (err as Error).message })
      }
    })
    signal.addEventListener('abort', () => this.wakeSink?.(), { once: true })
    const drainBy = { at: Number.POSITIVE_INFINITY }
    signal.addEventListener('abort', () => { drainBy.at = Date.now() + (this.opts.drainMs ?? PIPELINE_DEFAULTS.drainMs) }, { once: true })
    await this.sink(signal, drainBy)
    await Promise.all(running)
    for (const s of sources) s.checkpoint()
  }

  private async sink (signal: AbortSignal, drainBy: { at: number }): Promise<void> {
    let backoff = 200
    for (;;) {
      const batch = this.queue[0]
      if (batch === undefined) {
        if (signal.aborted) return
        await new Promise<void>((resolve) => { this.wakeSink = resolve })
        this.wakeSink = undefined
        continue
      }
      if (Date.now() > drainBy.at) {
        this.opts.log.error(LOG_CODES.shutdownDeadline, 'Shutdown deadline passed; queued batches are left to be read again.', { batches: this.queue.length })
        return
      }
      try {
        const started = performance.now()
        const r = await this.store.write(batch.events)
        this.opts.onWrite?.(performance.now() - started)
        this.queue.shift()
        this.counters.queued = this.queue.length
        this.spaceWaiters.shift()?.()
        batch.ack()
        this.counters.batches++
        this.counters.stored += r.written
        this.counters.duplicates += r.duplicates
        this.counters.deadLettered += r.deadLettered
        backoff = 200
        // A synchronous store (SQLite) never yields inside write(): without this, sources,
        // the API and /metrics would wait until the whole queue is written.
        await new Promise((resolve) => setImmediate(resolve))
      } catch (err) {
        this.counters.storeErrors++
        this.opts.log.error((err as { code?: string }).code ?? LOG_CODES.storeWrite, 'Store write failed; retrying the batch.', { error: (err as Error).message, retryInMs: backoff })
        await sleep(backoff)
        backoff = Math.min(backoff * 2, 30_000)
      }
    }
  }
}
