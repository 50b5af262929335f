import { setTimeout as sleep } from 'node:timers/promises'
import type { Store } from '../store/types.js'
import { isStartable, type Batch, type Log, type Source, type SourceState } from './types.js'
import { LOG_CODES, PatternMismatchError, SHUTDOWN_LOG_CODES, SourceStartError } from '../errors.js'
import { MISMATCH_SAMPLE_RECORDS, MismatchWatch } from '../parse/mismatch.js'
import { PIPELINE_DEFAULTS } from './config.js'
import { Backoff } from '../backoff.js'

export interface PipelineOptions {
  /** Batches waiting for the store; a source's emit waits while it is full. */
  queueBatches?: number
  /** How long a shutdown may spend writing what is queued. */
  drainMs?: number
  /** How soon an error of a source without start() still fails start-up (see the config schema). */
  startGraceMs?: number
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
 * What the pipeline counts for each source, by the batches it hands over (`Batch.source`): the
 * one place events are counted by parse status and by what the store did with them.
 */
export interface SourceFlow {
  /** Events handed over (queued for the store). */
  events: number
  /** Of those, by kea.parse.status. */
  ok: number
  partial: number
  unmatched: number
  stored: number
  duplicates: number
  deadLettered: number
}

export function emptyFlow (): SourceFlow {
  return { events: 0, ok: 0, partial: 0, unmatched: 0, stored: 0, duplicates: 0, deadLettered: 0 }
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
  private readonly states = new Map<string, SourceState>()
  /** Each source's parse statuses until its first records are judged (see checkPattern). */
  private readonly mismatch = new Map<string, MismatchWatch | 'judged'>()
  private readonly flows = new Map<string, SourceFlow>()

  constructor (private readonly store: Store, private readonly opts: PipelineOptions) {
    this.capacity = opts.queueBatches ?? PIPELINE_DEFAULTS.queueBatches
  }

  /**
   * Judges each source on its first records: when most did not match its pattern (a log in
   * another pattern), they are stored as unmatched raw text that no lease history can use, so
   * this is logged once per source, coded, with the built-in pattern the lines look like.
   */
  private checkPattern (batch: Batch): void {
    let watch = this.mismatch.get(batch.source)
    if (watch === 'judged') return
    if (watch === undefined) this.mismatch.set(batch.source, watch = new MismatchWatch())
    watch.observe(batch.events)
    if (watch.records < MISMATCH_SAMPLE_RECORDS) return
    this.mismatch.set(batch.source, 'judged')
    if (!watch.mostlyUnmatched) return
    const e = new PatternMismatchError(`Source ${batch.source}`, watch.describe(undefined, (name) => `set \`pattern: ${name}\` in its configuration`))
    this.opts.log.error(e.code, e.message, { source: batch.source, records: watch.records, unmatched: watch.unmatched, sample: watch.samples[0] })
  }

  /** What passed through for one source (zeros for a source that handed over nothing yet). */
  sourceFlow (name: string): SourceFlow {
    let f = this.flows.get(name)
    if (f === undefined) { f = emptyFlow(); this.flows.set(name, f) }
    return f
  }

  /** Each source's state by name ('starting' until run() reaches it). */
  sourceState (name: string): SourceState {
    return this.states.get(name) ?? 'starting'
  }

  /**
   * Starts every source (start() where it has one), then runs until `signal` aborts, drains the
   * queue (within drainMs) and saves checkpoints. While stopping, batches of sources that cannot
   * replay (Source.replayable) are still queued and stored until drainMs; what is not stored by
   * then is given up with Batch.drop, counted as dropped and logged. A source that cannot start
   * stops the others and rejects with SourceStartError: a service whose configured source
   * collects nothing must not look healthy. A source failing later is marked failed and the
   * others keep running.
   */
  async run (sources: Source[], signal: AbortSignal): Promise<void> {
    for (const s of sources) this.states.set(s.name, 'starting')
    const stopSources = new AbortController()
    let launched = false
    let halted = false
    let startError: Error | undefined
    const drainBy = { at: Number.POSITIVE_INFINITY }
    // Ends the sink's retry wait at once on a halt, so the drain starts (and ends) on time.
    const halting = new AbortController()
    // Ends, at the drain's deadline, a store write still retrying (a cluster down at shutdown):
    // otherwise the drain waited for it for ever, past any deadline, and the queued batches of
    // sources that cannot replay were never counted as dropped.
    const overdue = new AbortController()
    let overdueTimer: NodeJS.Timeout | undefined
    let graceTimer: NodeJS.Timeout | undefined
    // Stops sources and sink, once: on the caller's signal (also one that came before or during
    // start-up) or when a source fails to start.
    const halt = (): void => {
      if (halted) return
      halted = true
      clearTimeout(graceTimer)
      drainBy.at = Date.now() + (this.opts.drainMs ?? PIPELINE_DEFAULTS.drainMs)
      overdueTimer = setTimeout(() => { overdue.abort() }, drainBy.at - Date.now() + 1)
      if (launched) stopSources.abort()
      halting.abort()
      this.wakeSink?.()
    }
    const failStart = (s: Source, err: unknown): void => {
      this.failed(s)
      // One line: the reason ends up in the single line `keatrail run` exits with.
      const reason = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim()
      // The first failure is what start-up rejects with; further ones are only logged.
      // A source's own SourceStartError already names it and says what failed: not wrapped twice.
      if (startError === undefined) startError = (err as { code?: string })?.code === 'KEATRAIL_ERR_SOURCE_START' ? err as Error : new SourceStartError(s.name, reason)
      else this.opts.log.error(LOG_CODES.source, 'Source could not start.', { source: s.name, error: reason })
      halt()
    }
    if (signal.aborted) halt()
    else signal.addEventListener('abort', halt, { once: true })

    const starts = await Promise.allSettled(sources.map(async (s) => { if (isStartable(s)) await s.start() }))
    starts.forEach((r, i) => { if (r.status === 'rejected') failStart(sources[i] as Source, r.reason) })
    // After a failed start-up or a signal, only sources that opened something run (to close it).
    const toRun = sources.filter((s, i) => starts[i]?.status === 'fulfilled' && (!halted || isStartable(s)))
    if (!halted) for (const s of sources) if (isStartable(s)) this.states.set(s.name, 'running')

    // Sources that cannot replay: their batches are queued while they stop, until the drain is over.
    const replays = new Map(sources.map((s) => [s.name, s.replayable === true]))
    const drain = { over: false }
    const givenUp = new Map<string, { batches: number, events: number }>()
    const giveUp = (batch: Batch): void => {
      const g = givenUp.get(batch.source) ?? { batches: 0, events: 0 }
      g.batches++
      g.events += batch.events.length
      givenUp.set(batch.source, g)
      if (batch.drop !== undefined) batch.drop()
      else { const c = sources.find((s) => s.name === batch.source)?.counters; if (c !== undefined) c.dropped += batch.events.length }
    }
    // Batches of sources that cannot replay being handed over: the drain waits for them too.
    let handing = 0
    const emit = async (batch: Batch): Promise<void> => {
      // Counted as handed over, before any wait for room: a batch waiting in emit was received.
      const flow = this.sourceFlow(batch.source)
      flow.events += batch.events.length
      for (const e of batch.events) flow[e.kea.parse.status]++
      if (replays.get(batch.source) === true) { await enqueue(batch, true); return }
      handing++
      try { await enqueue(batch, false) } finally { handing--; this.wakeSink?.() }
    }
    const enqueue = async (batch: Batch, replayable: boolean): Promise<void> => {
      // Stopping (see below); also ends a source started just to be closed at its first batch.
      if (halted) { stopSources.abort(); if (replayable) return }
      // A first batch proves a source without start() is up.
      if (this.states.get(batch.source) === 'starting') this.states.set(batch.source, 'running')
      this.checkPattern(batch)
      if (this.queue.length >= this.capacity) this.counters.backpressured++
      while (this.queue.length >= this.capacity && !(replayable && stopSources.signal.aborted) && !drain.over) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve))
      }
      // Stopping: the batch is not queued and so never acknowledged; it is read again next start.
      if (replayable && stopSources.signal.aborted) return
      // Nobody would ever read it again: the drain stores it or, once over, it is counted as lost.
      if (drain.over) { giveUp(batch); return }
      this.queue.push(batch)
      this.counters.queued = this.queue.length
      this.wakeSink?.()
    }
    stopSources.signal.addEventListener('abort', () => { for (const w of this.spaceWaiters.splice(0)) w() }, { once: true })
    // Sources that cannot replay and have not stopped: the drain waits for their last batches.
    let emitting = toRun.filter((s) => replays.get(s.name) !== true).length
    const running = toRun.map(async (s) => {
      try {
        await s.run(emit, stopSources.signal)
        if (this.states.get(s.name) !== 'failed') this.states.set(s.name, 'stopped')
      } catch (err) {
        // Without start(), an error this early is the source failing to start (a port in use).
        if (this.states.get(s.name) === 'starting' && !halted) failStart(s, err)
        else {
          this.failed(s)
          this.opts.log.error(LOG_CODES.source, 'Source stopped with an error.', { source: s.name, error: err })
        }
      } finally {
        if (replays.get(s.name) !== true) { emitting--; this.wakeSink?.() }
      }
    })
    launched = true
    // Halted before the sources ran: the started ones run only to close what they opened. Their
    // run() may listen for the abort only after its first await (start() again), so the abort
    // comes on the next turn (or at their first batch), never before run() could hear it.
    const started = (): void => {
      for (const s of sources) if (this.states.get(s.name) === 'starting') this.states.set(s.name, 'running')
      this.opts.log.info('Sources started.', { sources: sources.map((s) => s.name) })
    }
    if (halted) setImmediate(() => stopSources.abort())
    else if (sources.some((s) => this.states.get(s.name) === 'starting')) graceTimer = setTimeout(started, this.opts.startGraceMs ?? PIPELINE_DEFAULTS.startGraceMs)
    else started()
    await this.sink(() => halted, drainBy, () => emitting > 0 || handing > 0, halting.signal, overdue.signal)
    clearTimeout(overdueTimer)
    drain.over = true
    for (const b of this.queue.splice(0)) if (replays.get(b.source) !== true) giveUp(b)
    for (const w of this.spaceWaiters.splice(0)) w()
    clearTimeout(graceTimer)
    // Bounded: a source that does not stop must not keep the process from exiting.
    const late = new AbortController()
    const stopped = await Promise.race([
      Promise.all(running).then(() => true),
      sleep(Math.max(0, drainBy.at - Date.now()) + 1000, false, { signal: late.signal }).catch(() => false)
    ])
    late.abort()
    for (const [source, g] of givenUp) {
      this.opts.log.error(SHUTDOWN_LOG_CODES.dropped, 'Shutdown drain ended before these events were stored; their source cannot read them again: counted as dropped and recorded as a collection gap.', { source, ...g })
    }
    if (!stopped) this.opts.log.error(LOG_CODES.shutdownDeadline, 'Sources did not stop in time; exiting without them.', { sources: toRun.filter((s) => this.states.get(s.name) !== 'stopped' && this.states.get(s.name) !== 'failed').map((s) => s.name) })
    for (const s of sources) {
      s.checkpoint()
      if (this.states.get(s.name) !== 'failed') this.states.set(s.name, 'stopped')
    }
    signal.removeEventListener('abort', halt)
    if (startError !== undefined) throw startError
  }

  private failed (s: Source): void {
    this.states.set(s.name, 'failed')
    if (s.counters !== undefined) s.counters.errors++
  }

  /**
   * Writes the queue until halted and empty, with no source that cannot replay still stopping
   * (`emitting`), or until drainBy.
   */
  private async sink (halted: () => boolean, drainBy: { at: number }, emitting: () => boolean, halting: AbortSignal, overdue: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 30_000 })
    for (;;) {
      const batch = this.queue[0]
      if (batch === undefined) {
        if (halted() && (!emitting() || Date.now() > drainBy.at)) return
        let deadline: NodeJS.Timeout | undefined
        await new Promise<void>((resolve) => {
          this.wakeSink = resolve
          // A source that does not stop must not keep the drain past its deadline.
          if (halted()) deadline = setTimeout(resolve, drainBy.at - Date.now() + 1)
        })
        clearTimeout(deadline)
        this.wakeSink = undefined
        continue
      }
      if (Date.now() > drainBy.at) {
        this.opts.log.error(LOG_CODES.shutdownDeadline, 'Shutdown deadline passed; queued batches are not stored (sources that replay read them again next start).', { batches: this.queue.length })
        return
      }
      try {
        const started = performance.now()
        const r = await untilAborted(this.store.write(batch.events, { signal: overdue }), overdue)
        this.opts.onWrite?.(performance.now() - started)
        this.queue.shift()
        this.counters.queued = this.queue.length
        this.spaceWaiters.shift()?.()
        batch.ack()
        this.counters.batches++
        // A replaced event (it had parsed worse) is stored anew.
        this.counters.stored += r.written + (r.replaced ?? 0)
        this.counters.duplicates += r.duplicates
        this.counters.deadLettered += r.deadLettered
        // Per source too: a batch is one source's events.
        const flow = this.sourceFlow(batch.source)
        flow.stored += r.written + (r.replaced ?? 0)
        flow.duplicates += r.duplicates
        flow.deadLettered += r.deadLettered
        backoff.reset()
        // A synchronous store (SQLite) never yields inside write(): without this, sources,
        // the API and /metrics would wait until the whole queue is written.
        await new Promise((resolve) => setImmediate(resolve))
      } catch (err) {
        // The drain's deadline ended the write: not a store error; the loop ends at the deadline.
        if (overdue.aborted) continue
        this.counters.storeErrors++
        const wait = backoff.next()
        this.opts.log.error((err as { code?: string }).code ?? LOG_CODES.storeWrite, 'Store write failed; retrying the batch.', { error: err, retryInMs: wait })
        // Stopping: no later than the deadline, then the batch is given up.
        if (halted()) await sleep(Math.min(wait, Math.max(0, drainBy.at - Date.now() + 1)))
        else await sleep(wait, undefined, { signal: halting }).catch(() => {})
      }
    }
  }
}

/**
 * `p`, or a rejection as soon as `signal` aborts: a store request in flight at the drain's
 * deadline (up to its request timeout) must not hold the shutdown. `p` settles later unwatched.
 */
async function untilAborted<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) { p.catch(() => {}); throw new Error('The shutdown drain deadline passed during the store write.') }
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new Error('The shutdown drain deadline passed during the store write.')) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([p, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    p.catch(() => {})
  }
}
