import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import { writeLatency } from '../api/app.js'
import { checkExposure, serveApi } from '../api/serve.js'
import type { KeatrailConfig } from '../config/config.js'
import { ApiListenError, DEAD_LETTER_OVERFLOW, LOG_CODES, isCodedError } from '../errors.js'
import { KeaPoller } from '../kea/poller.js'
import { Pipeline } from '../pipeline/pipeline.js'
import type { Log } from '../pipeline/types.js'
import type { DeadLetterStore } from '../store/deadletter.js'
import { SqliteStore } from '../store/sqlite/store.js'
import { lockDataDir } from './lock.js'
import { asLog } from './logger.js'
import { buildSources, stateDir } from './sources.js'
import { warnAboutInputs } from './preflight.js'
import { ensureDataDir, openStore } from './store.js'

/** How often the "Counters." line is logged (at debug level). */
const COUNTERS_EVERY_MS = 10_000

/**
 * `keatrail run`: the service built from one config. Takes the data directory for itself
 * (one writer), opens the store, builds the sources, serves the API and runs the pipeline
 * until a signal; everything it opened is closed on the way out, whatever failed. Start-up
 * failures (store, a source, the API port) reject with their coded error.
 */
export async function runService (cfg: KeatrailConfig, logger: Logger): Promise<number> {
  const log = asLog(logger)
  if (cfg.api.enabled) checkExposure(cfg.api)
  ensureDataDir(cfg.dataDir)
  // Before anything else is opened: a second writer must not touch the store or the checkpoints.
  const unlock = lockDataDir(cfg.dataDir)
  const stop = new AbortController()
  let signals = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++
    if (signals > 1) {
      // Second signal: leave now. Nothing unacknowledged was checkpointed, so nothing is lost.
      log.error(LOG_CODES.shutdownForced, 'Second signal; exiting without draining.', { signal: sig })
      unlock()
      process.exit(130)
    }
    log.info('Shutting down: draining queued batches.', { signal: sig })
    stop.abort()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  // `systemctl reload` (the unit's ExecReload) sends SIGHUP: the API reopens its audit log on it
  // (logrotate); without an API nothing is reopened, and the signal must not end the service.
  const onHangup = (): void => { log.info('SIGHUP received: the audit log, if the API runs, is reopened.') }
  process.on('SIGHUP', onHangup)
  const cleanups: Array<() => unknown> = []
  try {
    const opened = await openStore(cfg, { mode: 'write', log, waitForCluster: stop.signal, lockHeld: true })
    if (opened === undefined) return 0
    cleanups.push(async () => { await opened.close() })
    const { store, deadLetters } = opened
    const sources = buildSources(cfg, { stateDir: stateDir(cfg), logger, store })
    // Warnings only, in the background: each source starts and waits for its input either way.
    void warnAboutInputs(cfg.sources, (name) => asLog(logger.child({ source: name })), { signal: stop.signal }).catch(() => {})
    const registry = new Registry()
    const latency = writeLatency(registry)
    const pipeline = new Pipeline(store, { ...cfg.pipeline, log, onWrite: (ms) => latency.observe(ms / 1000) })
    log.info('keatrail running.', { store: store.kind, dataDir: cfg.dataDir, sources: cfg.sources.map((s) => s.name), kea: cfg.kea.servers.map((s) => s.name) })
    let running = true
    const poller = cfg.kea.servers.length === 0 ? undefined : new KeaPoller(cfg.kea, store, asLog(logger.child({ component: 'kea' })))
    if (cfg.api.enabled) {
      let api: Awaited<ReturnType<typeof serveApi>>
      try {
        api = await serveApi(store, cfg.api, cfg.dataDir, {
          sources: () => Object.fromEntries(sources.map((s) => [s.name, { ...s.counters }])),
          flows: () => Object.fromEntries(sources.map((s) => [s.name, { ...pipeline.sourceFlow(s.name) }])),
          deadLettersDropped: () => deadLetters?.dropped ?? 0,
          pipeline: () => ({ ...pipeline.counters }),
          ...(poller === undefined ? {} : { kea: () => ({ ...poller.counters, ...(poller.webhook === undefined ? {} : { webhookSent: poller.webhook.counters.sent, webhookFailed: poller.webhook.counters.failed, webhookDropped: poller.webhook.counters.dropped }) }) }),
          deadLetters: () => deadLetters?.count() ?? 0,
          leaseRepairs: () => store.leases.repaired ?? 0,
          leaseWipesIgnored: () => store.leases.wipesIgnored ?? 0,
          sourcesRunning: () => running,
          sourceStates: () => Object.fromEntries(sources.map((s) => [s.name, pipeline.sourceState(s.name)]))
        }, registry, deadLetters, logger)
      } catch (err) {
        // A service whose API is configured but not there looks down to everything that
        // checks it (and the operator may not read the log): fail start-up, as a source that
        // cannot start does.
        throw apiListenError(cfg, err)
      }
      cleanups.unshift(async () => { await api.app.close() })
      log.info('API and web UI listening.', { url: api.url })
    }
    // Retention (SQLite): once now, then on its interval; Elasticsearch users use ILM or data stream lifecycle.
    if (store instanceof SqliteStore && cfg.store.type === 'sqlite' && (cfg.store.retention.maxAgeDays !== undefined || cfg.store.retention.maxSizeMiB !== undefined)) {
      const sqlite = store
      const apply = (): void => {
        try {
          sqlite.applyRetention()
          const { events, snapshots } = sqlite.lastRetention
          if (events > 0 || snapshots > 0) log.info('Retention deleted old events and Kea snapshots.', { deleted: events, snapshots })
        } catch (err) {
          log.error(LOG_CODES.storeWrite, 'Retention failed; will try again.', { error: err })
        }
      }
      apply()
      const retention = setInterval(apply, cfg.store.retention.intervalMinutes * 60_000)
      cleanups.unshift(() => { clearInterval(retention) })
    }
    const overflow = deadLetters === undefined ? undefined : deadLetterOverflow(deadLetters, log)
    const stats = setInterval(() => {
      log.debug?.('Counters.', { pipeline: pipeline.counters, sources: Object.fromEntries(sources.map((s) => [s.name, { ...s.counters, ...pipeline.sourceFlow(s.name) }])), ...(poller === undefined ? {} : { kea: poller.counters }) })
      overflow?.()
    }, COUNTERS_EVERY_MS)
    cleanups.unshift(() => { clearInterval(stats) })
    const polling = poller?.run(stop.signal)
    cleanups.unshift(async () => {
      await polling?.catch((err: Error) => { log.error(LOG_CODES.keaUnreachable, 'Kea polling stopped with an error.', { error: err }) })
    })
    try {
      // A source that cannot start rejects this with its coded error: main prints it as one line.
      await pipeline.run(sources, stop.signal)
    } finally {
      running = false
      log.info('Stopped.', { pipeline: pipeline.counters })
    }
    return 0
  } finally {
    stop.abort()
    for (const c of cleanups) {
      try { await c() } catch (err) { log.error(LOG_CODES.shutdownDeadline, 'Could not close cleanly.', { error: err }) }
    }
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    process.off('SIGHUP', onHangup)
    unlock()
  }
}

/** The API could not listen: one coded line (the port taken, the address not here). */
export function apiListenError (cfg: Pick<KeatrailConfig, 'api'>, err: unknown): Error {
  if (isCodedError(err)) return err
  return new ApiListenError(`${cfg.api.host}:${cfg.api.port}`, (err as Error).message)
}

/**
 * Dead letters lost to the dead-letter store's bound are data lost: each call logs, at error
 * level, how many were removed since the last (they are also counted in /metrics).
 */
export function deadLetterOverflow (dlq: Pick<DeadLetterStore, 'dropped' | 'count'>, log: Log): () => void {
  let reported = dlq.dropped
  return () => {
    if (dlq.dropped <= reported) return
    log.error(DEAD_LETTER_OVERFLOW, 'The dead-letter store is full: its oldest entries were removed.', { removed: dlq.dropped - reported, removedTotal: dlq.dropped, waiting: dlq.count() })
    reported = dlq.dropped
  }
}
