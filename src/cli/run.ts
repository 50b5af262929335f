import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { loadConfig, parseConfig, type KeatrailConfig } from '../config/config.js'
import { packageRoot } from '../paths.js'
import { Pipeline } from '../pipeline/pipeline.js'
import type { Log } from '../pipeline/types.js'
import { FileSource } from '../sources/file/source.js'
import { JournalSource } from '../sources/journal/source.js'
import { SyslogSource } from '../sources/syslog/source.js'
import { DeadLetterStore } from '../store/deadletter.js'
import { ElasticsearchStore } from '../store/elasticsearch/store.js'
import { SqliteStore } from '../store/sqlite/store.js'
import type { Store } from '../store/types.js'
import type { CliIo } from './parse.js'
import { ensureDataDir } from './store-options.js'
import { LOG_CODES } from '../errors.js'
import { KeaPoller } from '../kea/poller.js'
import { Registry } from 'prom-client'
import { writeLatency } from '../api/app.js'
import { checkExposure, serveApi } from '../api/serve.js'

export function registerRun (program: Command, io: CliIo): void {
  program.command('run')
    .description('Run keatrail: follow Kea\'s logs and store the events (default: SQLite in ./data)')
    .option('--config <file>', 'keatrail.yaml; without it: /var/log/kea/*.log if present, else the bundled sample logs')
    .option('--data-dir <dir>', 'overrides dataDir of the config')
    .option('--no-api', 'do not serve the REST API and web UI')
    .option('--insecure', 'allow the API beyond loopback without API keys')
    .action(async (o: { config?: string, dataDir?: string, api?: boolean, insecure?: boolean }) => {
      const cfg = o.config !== undefined ? loadConfig(o.config) : defaultConfig()
      if (o.dataDir !== undefined) cfg.dataDir = o.dataDir
      if (o.api === false) cfg.api.enabled = false
      if (o.insecure === true) cfg.api.insecure = true
      io.exitCode = await runService(cfg, io)
    })
}

/** No config: Kea's default log directory if it has logs, else the bundled samples (so `run` shows something real). */
export function defaultConfig (): KeatrailConfig {
  const kea = '/var/log/kea'
  const live = existsSync(kea) && readdirSync(kea).some((f) => /\.log/.test(f))
  const include = live
    ? [join(kea, 'kea-dhcp4*.log*'), join(kea, 'kea-dhcp6*.log*')]
    : [join(packageRoot(), 'test', 'fixtures', 'kea', 'kea-2.2.0-dhcp*-INFO-full.log')]
  return parseConfig({ sources: [{ type: 'file', name: live ? 'kea' : 'samples', include, ...(live ? {} : { timeZone: 'UTC' }) }] })
}

function jsonLog (io: CliIo): Log {
  const write = (level: string, msg: string, fields?: Record<string, unknown>, code?: string): void => {
    io.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, ...(code === undefined ? {} : { code }), msg, ...fields }) + '\n')
  }
  return { info: (msg, f) => write('info', msg, f), error: (code, msg, f) => write('error', msg, f, code) }
}

/**
 * Elasticsearch may not be up yet when keatrail starts (both started at boot, or the cluster is
 * down): wait for it instead of exiting. No source starts before the templates are in place, or
 * the first write would create indices with default mappings. Returns false when a signal asked
 * to stop meanwhile (closing the store ends the wait).
 */
async function templatesInPlace (es: ElasticsearchStore, log: Log): Promise<boolean> {
  let stopping = false
  let attempts = 0
  const onSignal = (): void => { stopping = true; void es.close() }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  try {
    await es.ensureTemplatesWaiting((err, attempt, waitMs) => {
      attempts = attempt
      log.error(LOG_CODES.storeWrite, 'Elasticsearch not reachable to check templates; waiting for it.', { attempt, waitMs, error: err.message })
    })
    if (attempts > 0) log.info('Elasticsearch reachable; templates in place.', { attempts: attempts + 1 })
    return true
  } catch (err) {
    if (stopping) return false
    throw err
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

async function runService (cfg: KeatrailConfig, io: CliIo): Promise<number> {
  if (cfg.api.enabled) checkExposure(cfg.api)
  const log = jsonLog(io)
  ensureDataDir(cfg.dataDir)
  const deadLetters = new DeadLetterStore(join(cfg.dataDir, 'deadletter.db'))
  let store: Store
  if (cfg.store.type === 'sqlite') {
    store = new SqliteStore({
      path: cfg.store.path ?? join(cfg.dataDir, 'keatrail.db'),
      ...(cfg.store.synchronous === undefined ? {} : { synchronous: cfg.store.synchronous }),
      ...(cfg.store.retention === undefined ? {} : { retention: { maxAgeDays: cfg.store.retention.maxAgeDays, maxSizeMiB: cfg.store.retention.maxSizeMiB } })
    })
  } else {
    const es = new ElasticsearchStore({
      url: cfg.store.url,
      ...(cfg.store.namespace === undefined ? {} : { namespace: cfg.store.namespace }),
      ...(cfg.store.username === undefined ? {} : { username: cfg.store.username, password: process.env.KEATRAIL_ES_PASSWORD ?? '' }),
      ...(process.env.KEATRAIL_ES_API_KEY === undefined ? {} : { apiKey: process.env.KEATRAIL_ES_API_KEY }),
      ...(cfg.store.caFile === undefined ? {} : { caFile: cfg.store.caFile }),
      retry: cfg.store.retry
    }, { deadLetters, onRetry: (err, attempt, waitMs) => log.error(LOG_CODES.storeWrite, 'Elasticsearch write failed; retrying.', { attempt, waitMs, error: err.message }) })
    if (!await templatesInPlace(es, log)) {
      deadLetters.close()
      return 0
    }
    store = es
  }
  const state = join(cfg.dataDir, 'state')
  // Dropped datagrams are a gap in what keatrail saw: lease answers overlapping it say so.
  // The source retries (and logs) a gap that could not be recorded: the promise is its answer.
  const onLoss = (name: string) => async (from: number, to: number, count: number): Promise<void> => {
    await store.leases.recordGap({ scope: '*', from, to, reason: `syslog source ${name} dropped ${count} datagram(s)` })
  }
  const sources = cfg.sources.map((s) => s.type === 'file' ? new FileSource(s, state, log) : s.type === 'syslog' ? new SyslogSource(s, state, onLoss(s.name), log) : new JournalSource(s, state, log))
  const registry = new Registry()
  const latency = writeLatency(registry)
  const pipeline = new Pipeline(store, { queueBatches: cfg.pipeline.queueBatches, drainMs: cfg.pipeline.drainMs, startGraceMs: cfg.pipeline.startGraceMs, log, onWrite: (ms) => latency.observe(ms / 1000) })
  const stop = new AbortController()
  let signals = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++
    if (signals > 1) {
      // Second signal: leave now. Nothing unacknowledged was checkpointed, so nothing is lost.
      log.error(LOG_CODES.shutdownForced, 'Second signal; exiting without draining.', { signal: sig })
      process.exit(130)
    }
    log.info('Shutting down: draining queued batches.', { signal: sig })
    stop.abort()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  log.info('keatrail running.', { store: store.kind, dataDir: cfg.dataDir, sources: cfg.sources.map((s) => s.name), kea: cfg.kea.servers.map((s) => s.name) })
  // Retention (SQLite): once now, then on its interval; Elasticsearch users use ILM or data stream lifecycle.
  let retention: NodeJS.Timeout | undefined
  if (store instanceof SqliteStore && cfg.store.type === 'sqlite' && cfg.store.retention !== undefined) {
    const sqlite = store
    const apply = (): void => {
      try {
        const deleted = sqlite.applyRetention()
        if (deleted > 0) log.info('Retention deleted old events.', { deleted })
      } catch (err) {
        log.error(LOG_CODES.storeWrite, 'Retention failed; will try again.', { error: (err as Error).message })
      }
    }
    apply()
    retention = setInterval(apply, cfg.store.retention.intervalMinutes * 60_000)
  }
  const poller = cfg.kea.servers.length === 0 ? undefined : new KeaPoller(cfg.kea, store, log)
  const stats = setInterval(() => {
    log.info('Counters.', { pipeline: pipeline.counters, sources: Object.fromEntries(sources.map((s) => [s.name, s.counters])), ...(poller === undefined ? {} : { kea: poller.counters }) })
  }, 10_000)
  const polling = poller?.run(stop.signal)
  let api: Awaited<ReturnType<typeof serveApi>> | undefined
  let running = true
  if (cfg.api.enabled) {
    try {
      api = await serveApi(store, cfg.api, cfg.dataDir, {
        sources: () => Object.fromEntries(sources.map((s) => [s.name, { ...s.counters }])),
        pipeline: () => ({ ...pipeline.counters }),
        ...(poller === undefined ? {} : { kea: () => ({ ...poller.counters }) }),
        deadLetters: () => deadLetters.count(),
        sourcesRunning: () => running,
        sourceStates: () => Object.fromEntries(sources.map((s) => [s.name, pipeline.sourceState(s.name)]))
      }, registry, deadLetters)
      log.info('API and web UI listening.', { url: api.url })
    } catch (err) {
      // The pipeline matters more than the API: keep collecting, say why there is no API.
      log.error((err as { code?: string }).code === 'KEATRAIL_ERR_USAGE' ? 'KEATRAIL_ERR_USAGE' : LOG_CODES.apiListen, 'API not started; collecting anyway.', { error: (err as Error).message })
    }
  }
  try {
    // A source that cannot start rejects this with its coded error: main prints it as one line.
    await pipeline.run(sources, stop.signal)
  } finally {
    running = false
    stop.abort()
    await polling?.catch((err: Error) => { log.error(LOG_CODES.keaUnreachable, 'Kea polling stopped with an error.', { error: err.message }) })
    await api?.app.close()
    clearInterval(stats)
    if (retention !== undefined) clearInterval(retention)
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    log.info('Stopped.', { pipeline: pipeline.counters })
    await store.close()
    deadLetters.close()
  }
  return 0
}
