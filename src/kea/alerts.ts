import { createHash } from 'node:crypto'
import { z } from 'zod'
import { LOG_CODES } from '../errors.js'
import { retry } from '../backoff.js'
import { withoutCredentials } from '../credentials.js'
import type { KeaEvent } from '../parse/event.js'
import type { Log } from '../pipeline/types.js'
import type { KeaSnapshot } from './snapshot.js'

const threshold = z.number().min(0).max(100)

export const alertsConfigSchema = z.object({
  warn: threshold.default(80).describe('Utilization (%) of a subnet or shared network at which a warning fires'),
  critical: threshold.default(95).describe('Utilization (%) at which a critical alert fires'),
  hysteresis: z.number().min(0).max(50).default(5).describe('An alert clears only once utilization is this many points below its threshold (no flapping)'),
  overrides: z.array(z.object({
    server: z.string().optional().describe('Only this Kea server'),
    subnet_id: z.number().int().optional().describe('This subnet id'),
    shared_network: z.string().optional().describe('This shared network'),
    warn: threshold.optional().describe('Its warning threshold'),
    critical: threshold.optional().describe('Its critical threshold')
  }).strict()).default([]).describe('Other thresholds for some subnets or shared networks (first match wins)'),
  webhook: z.object({
    url: z.string().url().describe('POSTed one JSON object per alert'),
    timeoutMs: z.number().int().positive().default(5000).describe('Per attempt'),
    retries: z.number().int().min(0).max(10).default(3).describe('Further attempts after a failure, with doubling waits'),
    headers: z.record(z.string(), z.string()).default({}).describe('Extra headers, e.g. an Authorization token')
  }).strict().optional().describe('Where to send alerts besides the store')
}).strict()

export type AlertsConfig = z.output<typeof alertsConfigSchema>

const LEVELS = ['none', 'warn', 'critical'] as const
type Level = typeof LEVELS[number]

/** One change of a pool's alert level. */
export interface PoolAlert {
  server: string
  service: string
  /** "subnet 1 (192.0.2.0/24)" or "shared network office". */
  scope: string
  subnet_id?: number
  subnet?: string
  shared_network?: string
  level: Level
  previous: Level
  utilization: number
  assigned: number
  total: number
  time: string
}

/**
 * Pool depletion alerts with hysteresis: a level is entered when utilization reaches its
 * threshold and left only when it falls `hysteresis` points below it, so a pool hovering at
 * the threshold alerts once. State is per server, service and subnet / shared network.
 */
export class AlertEngine {
  private readonly levels = new Map<string, Level>()

  constructor (readonly cfg: AlertsConfig) {}

  private thresholds (server: string, subnetId?: number, network?: string): { warn: number, critical: number } {
    const o = this.cfg.overrides.find((x) => (x.server === undefined || x.server === server) &&
      (x.subnet_id === undefined || x.subnet_id === subnetId) && (x.shared_network === undefined || x.shared_network === network) &&
      (x.subnet_id !== undefined || x.shared_network !== undefined || x.server !== undefined))
    return { warn: o?.warn ?? this.cfg.warn, critical: o?.critical ?? this.cfg.critical }
  }

  private next (current: Level, u: number, t: { warn: number, critical: number }): Level {
    const reached: Level = u >= t.critical ? 'critical' : u >= t.warn ? 'warn' : 'none'
    if (LEVELS.indexOf(reached) >= LEVELS.indexOf(current)) return reached
    // Going down: only below the current level's threshold minus the hysteresis.
    const h = this.cfg.hysteresis
    if (current === 'critical' && u >= t.critical - h) return 'critical'
    if (u >= t.warn - h) return 'warn'
    return 'none'
  }

  private pools (s: KeaSnapshot): Array<Omit<PoolAlert, 'level' | 'previous' | 'time' | 'server' | 'service'> & { key: string }> {
    const out = []
    for (const u of s.subnets) {
      if (u.total <= 0) continue
      out.push({
        key: `${s.server}|${s.service}|subnet|${u.id}`, scope: `subnet ${u.id}${u.subnet === undefined ? '' : ` (${u.subnet})`}`,
        subnet_id: u.id, ...(u.subnet === undefined ? {} : { subnet: u.subnet }), ...(u.shared_network === undefined ? {} : { shared_network: u.shared_network }),
        utilization: u.utilization, assigned: u.assigned, total: u.total
      })
    }
    for (const n of s.shared_networks) {
      if (n.total <= 0) continue
      out.push({ key: `${s.server}|${s.service}|network|${n.name}`, scope: `shared network ${n.name}`, shared_network: n.name, utilization: n.utilization, assigned: n.assigned, total: n.total })
    }
    return out
  }

  /** Takes the levels a stored snapshot implies, without alerting (after a restart). */
  prime (snapshots: readonly KeaSnapshot[]): void {
    for (const s of snapshots) {
      if (s.state !== 'up') continue
      for (const p of this.pools(s)) {
        const t = this.thresholds(s.server, p.subnet_id, p.shared_network)
        this.levels.set(p.key, this.next('none', p.utilization, t))
      }
    }
  }

  /** The level changes this snapshot causes. */
  evaluate (s: KeaSnapshot): PoolAlert[] {
    if (s.state !== 'up') return []
    const out: PoolAlert[] = []
    for (const { key, ...p } of this.pools(s)) {
      const current = this.levels.get(key) ?? 'none'
      const t = this.thresholds(s.server, p.subnet_id, p.shared_network)
      const level = this.next(current, p.utilization, t)
      if (level === current) continue
      this.levels.set(key, level)
      out.push({ server: s.server, service: s.service, ...p, level, previous: current, time: s['@timestamp'] })
    }
    return out
  }
}

/** An alert as an event in the store (`event.kind: alert`), searchable next to the logs. */
export function alertEvent (a: PoolAlert): KeaEvent {
  const what = a.level === 'none' ? `cleared (was ${a.previous})` : a.level
  const message = `Pool depletion ${what}: ${a.scope} on ${a.server}/${a.service} is ${a.utilization.toFixed(1)} % used (${a.assigned} of ${a.total} addresses, ${a.total - a.assigned} free)`
  const code = `KEATRAIL_POOL_DEPLETION_${a.level === 'none' ? 'CLEAR' : a.level.toUpperCase()}`
  const id = createHash('sha1').update([a.server, a.service, a.scope, a.level, a.time].join('|')).digest('hex').slice(0, 24)
  return {
    '@timestamp': a.time,
    message,
    event: { id: `alert-${id}`, original: message, code, dataset: a.service === 'dhcp6' ? 'kea.dhcp6' : 'kea.dhcp4', module: 'kea', kind: 'alert', category: ['network'] },
    log: { level: a.level === 'critical' ? 'error' : a.level === 'warn' ? 'warn' : 'info', logger: 'keatrail.alerts' },
    host: { name: a.server },
    kea: {
      ...(a.subnet_id === undefined ? {} : { subnet_id: a.subnet_id }),
      ...(a.subnet === undefined ? {} : { subnet: a.subnet }),
      ...(a.shared_network === undefined ? {} : { shared_network: a.shared_network }),
      source_id: 'keatrail-alerts',
      parse: { status: 'ok' }
    }
  }
}

/**
 * Delivers alerts to a webhook without holding up polling: a bounded queue (what does not fit
 * is dropped and counted), each alert retried with doubling waits, failures logged.
 */
export class Webhook {
  readonly counters = { sent: 0, failed: 0, dropped: 0 }
  private readonly queue: PoolAlert[] = []
  private busy: Promise<void> | undefined

  constructor (private readonly cfg: NonNullable<AlertsConfig['webhook']>, private readonly log: Log, private readonly capacity = 1000) {}

  send (a: PoolAlert): void {
    if (this.queue.length >= this.capacity) {
      this.counters.dropped++
      this.log.error(LOG_CODES.webhook, 'Alert webhook queue full; alert not sent there (it is in the store).', { url: withoutCredentials(this.cfg.url), scope: a.scope, dropped: this.counters.dropped })
      return
    }
    this.queue.push(a)
    this.busy ??= this.drain().finally(() => { this.busy = undefined })
  }

  /** Resolves when everything queued has been delivered or given up. */
  async flush (): Promise<void> {
    while (this.busy !== undefined) await this.busy
  }

  private async drain (): Promise<void> {
    for (let a = this.queue.shift(); a !== undefined; a = this.queue.shift()) {
      try {
        await retry(async () => {
          const res = await fetch(this.cfg.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...this.cfg.headers },
            body: JSON.stringify({ type: 'keatrail.pool_depletion', ...a }),
            signal: AbortSignal.timeout(this.cfg.timeoutMs)
          })
          if (!res.ok) throw new Error(`HTTP ${res.status}`)
        }, { initialMs: 500, maxMs: 60_000, retries: this.cfg.retries })
        this.counters.sent++
      } catch (err) {
        this.counters.failed++
        this.log.error(LOG_CODES.webhook, 'Alert webhook failed; alert not delivered there (it is in the store).', { url: withoutCredentials(this.cfg.url), error: err, scope: a.scope })
      }
    }
  }
}
