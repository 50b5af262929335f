import { z } from 'zod'
import { KEA_LOG_CODES, LOG_CODES } from '../errors.js'
import { Backoff } from '../backoff.js'
import { parseAddressOrPrefix } from '../leases/address.js'
import { memfileIntervals, rowsFromLeaseCommand } from '../leases/memfile.js'
import { seedKeaState } from '../leases/seed.js'
import type { Log } from '../pipeline/types.js'
import type { Store } from '../store/types.js'
import { AlertEngine, alertEvent, alertsConfigSchema, Webhook, type PoolAlert } from './alerts.js'
import { KeaCommandError, KeaControlClient, keaServerConfigSchema, type KeaAnswer, type KeaService } from './control.js'
import { buildSnapshot, cutText, failedSnapshot, summarizeConfig, type ConfigSummary, type KeaSnapshot } from './snapshot.js'

export const keaConfigSchema = z.object({
  servers: z.array(keaServerConfigSchema).default([]).describe('Kea servers to take status snapshots of'),
  alerts: alertsConfigSchema.prefault({}).describe('Pool depletion alerts')
}).strict()

export type KeaConfig = z.output<typeof keaConfigSchema>

/** Longest wait between attempts while a server is down. */
const MAX_BACKOFF_MS = 300_000
/**
 * Leases asked for per lease*-get-page. Each page is handed to the lease store before the next
 * is asked for: all of Kea's leases at once (up to MAX_LEASE_PAGES pages, ~260 B each parsed)
 * were ~2.6 GB for 10 million, far past the 256 MB heap the service runs with.
 */
const LEASE_PAGE = 1000
/** Pages per seed and service: its cost bound (10 million leases) whatever the Control Agent answers. */
const MAX_LEASE_PAGES = 10_000

/** A lease address in one form whatever its text (the end of a page), or undefined if it is none. */
function addressKey (address: string): string | undefined {
  try { return parseAddressOrPrefix(address).lo } catch { return undefined }
}

const messageOf = (err: unknown): string => err instanceof Error ? err.message : String(err)

/** What the poller remembers of one daemon between polls. */
interface DaemonState {
  pid?: number
  reload?: number
  version?: KeaAnswer
  config?: ConfigSummary
  /** stat_cmds answered "unsupported": ask again only after a restart or reload. */
  noStatCmds?: boolean
}

export interface PollResult { snapshots: KeaSnapshot[], alerts: PoolAlert[] }

/**
 * Takes snapshots of Kea servers on their interval (with jitter; doubling backoff up to 5
 * minutes while a server is down, each failed attempt recorded as an "unreachable" snapshot),
 * stores them, evaluates pool alerts and optionally seeds lease history from Kea's leases.
 * Servers are polled independently: a hanging one does not delay the others.
 */
export class KeaPoller {
  readonly clients: KeaControlClient[]
  readonly alerts: AlertEngine
  readonly webhook: Webhook | undefined
  /** leaseSeedsIncomplete: seeds of one service that stopped before Kea's last lease (an error, or cut: each logged). */
  readonly counters = { polls: 0, failures: 0, snapshots: 0, alerts: 0, leasesSeeded: 0, leaseSeedsIncomplete: 0 }
  private readonly state = new Map<string, DaemonState>()

  constructor (readonly cfg: KeaConfig, private readonly store: Store | undefined, private readonly log: Log, private readonly now: () => number = Date.now) {
    this.clients = cfg.servers.map((s) => new KeaControlClient(s))
    this.alerts = new AlertEngine(cfg.alerts)
    this.webhook = cfg.alerts.webhook === undefined ? undefined : new Webhook(cfg.alerts.webhook, log)
  }

  /** One snapshot per service of one server, now. Nothing is stored. */
  async snapshot (client: KeaControlClient): Promise<KeaSnapshot[]> {
    const out: KeaSnapshot[] = []
    for (const service of client.cfg.services) out.push(await this.snapshotOf(client, service))
    return out
  }

  private async snapshotOf (client: KeaControlClient, service: KeaService): Promise<KeaSnapshot> {
    const name = client.cfg.name
    const time = this.now()
    const bucket = client.cfg.intervalMs
    const key = `${name}|${service}`
    const st = this.state.get(key) ?? {}
    this.state.set(key, st)
    try {
      const status = await client.command('status-get', service)
      if (status.result !== 0) {
        // The Control Agent could not reach the daemon behind it: that daemon is unreachable.
        const text = status.text === undefined ? undefined : cutText(String(status.text))
        const offline = /unable to forward|offline|No such file|Connection refused/i.test(text ?? '')
        return failedSnapshot(name, service, time, bucket, offline ? 'unreachable' : 'kea', text ?? `result ${status.result}`)
      }
      const args = status.arguments ?? {}
      const pid = typeof args.pid === 'number' ? args.pid : undefined
      const reload = typeof args.reload === 'number' ? args.reload : undefined
      const restarted = pid !== st.pid || (reload !== undefined && st.reload !== undefined && reload < st.reload)
      if (restarted) { delete st.version; delete st.config; delete st.noStatCmds }
      if (pid !== undefined) st.pid = pid
      if (reload !== undefined) st.reload = reload
      st.version ??= await client.command('version-get', service)
      if (st.config === undefined) {
        const cfg = await client.command('config-get', service)
        if (cfg.result === 0) st.config = summarizeConfig(cfg, service)
      }
      const stats = await client.command('statistic-get-all', service)
      let statLease: KeaAnswer | undefined
      if (st.noStatCmds !== true) {
        statLease = await client.command(service === 'dhcp4' ? 'stat-lease4-get' : 'stat-lease6-get', service)
        if (statLease.result === 2) st.noStatCmds = true
      }
      return buildSnapshot({
        server: name, service, time, bucketMs: bucket, status, stats,
        ...(st.version === undefined ? {} : { version: st.version }),
        ...(statLease === undefined ? {} : { statLease }),
        ...(st.config === undefined ? {} : { config: st.config })
      })
    } catch (err) {
      if (err instanceof KeaCommandError) {
        delete st.pid
        return failedSnapshot(name, service, time, bucket, err.kind, err.message)
      }
      // Answers keatrail could not make into a snapshot (a stack overflow on a hostile answer
      // was one): recorded all the same, or the server would vanish from the snapshots on every
      // poll. What was kept of it is fetched again next time.
      this.state.delete(key)
      const message = `the answers could not be made into a snapshot: ${messageOf(err)}`
      this.log.error(KEA_LOG_CODES.snapshotFailed, 'A Kea snapshot could not be built; an error snapshot takes its place.', { server: name, service, error: err })
      return failedSnapshot(name, service, time, bucket, 'internal', message)
    }
  }

  /**
   * Polls one server once: snapshots stored, alerts evaluated, stored and sent. `signal` ends a
   * store write still retrying (a cluster down at shutdown: the service closes the store only
   * after polling has stopped, so a write waiting for it would hold the shutdown for ever).
   */
  async pollOnce (client: KeaControlClient, signal?: AbortSignal): Promise<PollResult> {
    this.counters.polls++
    let snapshots = await this.snapshot(client)
    for (const s of snapshots) {
      if (s.state !== 'up') {
        this.counters.failures++
        // An internal failure was logged where it happened, with its own code.
        if (s.error?.kind !== 'internal') this.log.error(LOG_CODES.keaUnreachable, 'Kea server did not answer; recorded as unreachable.', { server: s.server, service: s.service, error: s.error?.message })
      }
    }
    // Alerts come from what was stored: none from a snapshot the store refused.
    if (this.store !== undefined) snapshots = await this.storeSnapshots(this.store, client, snapshots)
    const alerts = snapshots.flatMap((s) => this.alerts.evaluate(s))
    if (this.store !== undefined && alerts.length > 0) await this.store.write(alerts.map(alertEvent), signal === undefined ? {} : { signal })
    this.counters.snapshots += snapshots.length
    this.counters.alerts += alerts.length
    for (const a of alerts) {
      this.log.info('Pool depletion alert.', { ...a })
      this.webhook?.send(a)
    }
    return { snapshots, alerts }
  }

  /**
   * Writes the snapshots; if the store refuses them, an error snapshot for each saying why, so
   * the poll shows in the history. A store that refuses that too (it is down) throws: the
   * loop logs it and polls again.
   */
  private async storeSnapshots (store: Store, client: KeaControlClient, snapshots: KeaSnapshot[]): Promise<KeaSnapshot[]> {
    try {
      await store.snapshots.write(snapshots)
      return snapshots
    } catch (err) {
      this.log.error(KEA_LOG_CODES.snapshotFailed, 'A Kea snapshot could not be stored; an error snapshot takes its place.', { server: client.cfg.name, error: err })
      const failed = snapshots.map((s) => failedSnapshot(s.server, s.service, Date.parse(s['@timestamp']), client.cfg.intervalMs, 'internal', `the snapshot could not be stored: ${messageOf(err)}`))
      await store.snapshots.write(failed)
      return failed
    }
  }

  /** Kea's current leases (lease_cmds, paged) as kea-state intervals in lease history. */
  async seedLeases (client: KeaControlClient): Promise<number> {
    if (this.store === undefined) return 0
    const leaseStore = this.store.leases
    const server = client.cfg.name
    // A server in a lease domain seeds the domain's history.
    const scope = leaseStore.domains?.scopeOf(server) ?? server
    let created = 0
    for (const service of client.cfg.services) {
      const family = service === 'dhcp4' ? 4 : 6
      let from = 'start'
      // Kea pages from the last address of the page before: a page that ends where one ended
      // before is one seen already (a Control Agent repeating pages), and would be asked for
      // again and again. Not an order check: an SQL lease6 backend that stores addresses as text
      // (Kea before 2.5) pages in text order, not numeric.
      const ends = new Set<string>()
      let pages = 0
      let seeded = 0
      let complete = false
      let cut: string | undefined
      try {
        for (;;) {
          if (pages >= MAX_LEASE_PAGES) { cut = `Kea listed more than ${MAX_LEASE_PAGES} pages of ${LEASE_PAGE} leases`; break }
          const a = await client.command(`lease${family}-get-page`, service, { from, limit: LEASE_PAGE })
          pages++
          if (a.result === 3) { complete = true; break }
          if (a.result !== 0) {
            this.log.error(LOG_CODES.keaUnreachable, 'Kea did not list its leases (is the lease_cmds hook loaded?).', { server, service, error: cutText(String(a.text ?? `result ${a.result}`)) })
            break
          }
          const listed = a.arguments?.leases
          const leases = (Array.isArray(listed) ? listed : []).filter((l): l is Record<string, unknown> => typeof l === 'object' && l !== null)
          if (leases.length === 0) { complete = true; break }
          const last = leases[leases.length - 1]?.['ip-address']
          const key = typeof last === 'string' ? addressKey(last) : undefined
          if (key !== undefined && ends.has(key)) { cut = `the paging cursor did not advance (page ${pages}, asked from ${from}, ends at ${cutText(String(last), 64)})`; break }
          if (key !== undefined) ends.add(key)
          // This page is in the store before the next is asked for: memory holds one page.
          const r = await seedKeaState(leaseStore, memfileIntervals(rowsFromLeaseCommand(leases, family), scope), scope)
          created += r.created
          seeded += leases.length
          this.counters.leasesSeeded += r.created
          if (leases.length < LEASE_PAGE) { complete = true; break }
          if (typeof last !== 'string' || key === undefined) { cut = `the last lease of page ${pages} has no ip-address to ask for the next page from`; break }
          from = last
        }
      } finally {
        // Errors (logged here or by the caller) and cuts alike leave the seed incomplete.
        if (!complete) this.counters.leaseSeedsIncomplete++
      }
      if (cut !== undefined) {
        this.log.error(KEA_LOG_CODES.leaseSeedIncomplete, `Lease seeding stopped early: ${cut}; the leases after it are not seeded.`, { server, service, pages, leases: seeded })
      }
    }
    return created
  }

  /** Runs until `signal` aborts. */
  async run (signal: AbortSignal): Promise<void> {
    if (this.store !== undefined) {
      try { this.alerts.prime(await this.store.snapshots.latest()) } catch { /* a fresh store */ }
    }
    await Promise.all(this.clients.map(async (c) => { await this.loop(c, signal) }))
    await this.webhook?.flush()
  }

  private async loop (client: KeaControlClient, signal: AbortSignal): Promise<void> {
    // Polls on the interval; while the server is down, the wait doubles up to MAX_BACKOFF_MS.
    const backoff = new Backoff({ initialMs: client.cfg.intervalMs, maxMs: Math.max(MAX_BACKOFF_MS, client.cfg.intervalMs), jitter: 0.1 })
    let nextLeases = 0
    while (!signal.aborted) {
      let ok = false
      try {
        const r = await this.pollOnce(client, signal)
        ok = r.snapshots.every((s) => s.state === 'up')
        if (ok && client.cfg.leasesIntervalMs !== undefined && this.now() >= nextLeases) {
          nextLeases = this.now() + client.cfg.leasesIntervalMs
          await this.seedLeases(client).catch((err: Error) => {
            this.log.error(LOG_CODES.keaUnreachable, 'Lease seeding failed; will try again.', { server: client.cfg.name, error: err })
          })
        }
      } catch (err) {
        this.log.error(LOG_CODES.storeWrite, 'Storing a Kea snapshot failed; will poll again.', { server: client.cfg.name, error: err })
      }
      // Consecutive failures after a success wait 2, 4, 8 … intervals.
      if (ok) backoff.reset()
      await backoff.sleep(signal)
    }
  }
}
