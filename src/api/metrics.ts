import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client'
import type { ServiceStatus } from './app.js'

type Labels = Record<string, string>
type Sample = [Labels, number]

/**
 * A Prometheus counter whose value is read from a component's own count at scrape time (the
 * components count in plain numbers; this only exposes them).
 */
function counter (registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Counter({
    name, help, labelNames, registers: [registry],
    collect () { this.reset(); for (const [labels, v] of read()) this.inc(labels, v) }
  })
}

function gauge (registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Gauge({
    name, help, labelNames, registers: [registry],
    collect () { this.reset(); for (const [labels, v] of read()) this.set(labels, v) }
  })
}

const KEA_COUNTERS: Record<string, [string, string]> = {
  polls: ['keatrail_kea_polls_total', 'Snapshot polls of Kea servers'],
  failures: ['keatrail_kea_poll_failures_total', 'Polls a Kea server did not answer (recorded as unreachable snapshots)'],
  snapshots: ['keatrail_kea_snapshots_total', 'Kea status snapshots stored'],
  alerts: ['keatrail_kea_alerts_total', 'Pool depletion alerts raised or cleared'],
  leasesSeeded: ['keatrail_kea_leases_seeded_total', 'Lease intervals seeded from Kea\'s lease commands'],
  leaseSeedsIncomplete: ['keatrail_kea_lease_seeds_incomplete_total', 'Lease seedings that did not reach Kea\'s last lease page: an error, lease_cmds not loaded, a paging cursor that did not advance, or the page bound (each logged)'],
  webhookSent: ['keatrail_kea_webhook_sent_total', 'Alerts delivered to the webhook'],
  webhookFailed: ['keatrail_kea_webhook_failed_total', 'Alerts the webhook did not take after every retry (each logged)'],
  webhookDropped: ['keatrail_kea_webhook_dropped_total', 'Alerts not sent to the webhook because its queue was full (each logged)']
}

/**
 * The service's metrics, named as Prometheus and Vector's instrumentation rules have it: bytes
 * and events counted separately, counters ending in _total, the unit in the name, one metric
 * per meaning with labels for its parts (source, outcome, status).
 */
export function registerMetrics (registry: Registry, status: ServiceStatus): void {
  // prefix only: the default metrics carry their own process_/nodejs_ names.
  collectDefaultMetrics({ register: registry, prefix: 'keatrail_' })
  const sources = (): Array<[string, Record<string, number>]> => Object.entries(status.sources?.() ?? {})
  const flows = (): Array<[string, NonNullable<ReturnType<NonNullable<ServiceStatus['flows']>>>[string]]> => Object.entries(status.flows?.() ?? {})
  const perSource = (key: string) => (): Sample[] => sources().map(([source, c]) => [{ source }, c[key] ?? 0])

  counter(registry, 'keatrail_source_received_bytes_total', 'Bytes a source read or received (file bytes, journal JSON lines, syslog messages)', ['source'], perSource('received'))
  counter(registry, 'keatrail_source_received_events_total', 'Events a source handed to the pipeline', ['source'], () => flows().map(([source, f]) => [{ source }, f.events]))
  counter(registry, 'keatrail_source_parsed_events_total', 'Events by parse status (ok, partial, unmatched: a high unmatched share is a wrong pattern)', ['source', 'status'],
    () => flows().flatMap(([source, f]) => [[{ source, status: 'ok' }, f.ok], [{ source, status: 'partial' }, f.partial], [{ source, status: 'unmatched' }, f.unmatched]] as Sample[]))
  counter(registry, 'keatrail_source_events_total', 'A source\'s events by what the store did with them (stored, duplicate: already there, dead_lettered: rejected)', ['source', 'outcome'],
    () => flows().flatMap(([source, f]) => [[{ source, outcome: 'stored' }, f.stored], [{ source, outcome: 'duplicate' }, f.duplicates], [{ source, outcome: 'dead_lettered' }, f.deadLettered]] as Sample[]))
  counter(registry, 'keatrail_source_spilled_events_total', 'Messages kept in the on-disk spill queue because the pipeline was full (UDP syslog)', ['source'], perSource('spilled'))
  counter(registry, 'keatrail_source_discarded_events_total', 'Messages a source dropped (UDP syslog with the spill queue full, kernel receive buffer overflows)', ['source'], perSource('dropped'))
  counter(registry, 'keatrail_source_errors_total', 'Errors of a source (each is logged with its code)', ['source'], perSource('errors'))
  // Only sources that have connections (syslog TCP/TLS): not a 0 for every file source.
  const ofSourcesWith = (key: string) => (): Sample[] => sources().filter(([, c]) => key in c).map(([source, c]) => [{ source }, c[key] ?? 0])
  counter(registry, 'keatrail_source_rejected_connections_total', 'TCP/TLS connections a source refused or closed at a limit (per peer network, total, first message or handshake too late; each logged)', ['source'], ofSourcesWith('rejectedConnections'))
  counter(registry, 'keatrail_source_evicted_connections_total', 'TCP/TLS connections closed at maxConnections to admit a new one: the longest without a complete message (each logged)', ['source'], ofSourcesWith('evictedConnections'))
  gauge(registry, 'keatrail_source_state', 'Each source\'s state: 1 for the state it is in (starting, running, failed, stopped)', ['source', 'state'],
    () => Object.entries(status.sourceStates?.() ?? {}).flatMap(([source, st]) => (['starting', 'running', 'failed', 'stopped'] as const).map((s): Sample => [{ source, state: s }, s === st ? 1 : 0])))

  const pipeline = (): Record<string, number> => status.pipeline?.() ?? {}
  const hasPipeline = (): boolean => status.pipeline !== undefined
  counter(registry, 'keatrail_pipeline_batches_total', 'Batches written to the store', [], () => hasPipeline() ? [[{}, pipeline().batches ?? 0]] : [])
  counter(registry, 'keatrail_pipeline_events_total', 'Events by what the store did with them (stored, duplicate, dead_lettered)', ['outcome'],
    () => hasPipeline() ? [[{ outcome: 'stored' }, pipeline().stored ?? 0], [{ outcome: 'duplicate' }, pipeline().duplicates ?? 0], [{ outcome: 'dead_lettered' }, pipeline().deadLettered ?? 0]] : [])
  counter(registry, 'keatrail_pipeline_store_errors_total', 'Failed store writes (each logged; the batch is retried, never dropped)', [], () => hasPipeline() ? [[{}, pipeline().storeErrors ?? 0]] : [])
  counter(registry, 'keatrail_pipeline_backpressure_waits_total', 'Batches a source had to wait to hand over because the queue was full', [], () => hasPipeline() ? [[{}, pipeline().backpressured ?? 0]] : [])
  gauge(registry, 'keatrail_pipeline_queued_batches', 'Batches waiting for the store', [], () => hasPipeline() ? [[{}, pipeline().queued ?? 0]] : [])

  for (const [key, [name, help]] of Object.entries(KEA_COUNTERS)) {
    counter(registry, name, help, [], () => { const v = status.kea?.()[key]; return v === undefined ? [] : [[{}, v]] })
  }

  counter(registry, 'keatrail_lease_history_repaired_keys_total', 'Leases whose stored history could not be read (damaged on disk), rebuilt from the stored events (each logged)', [], () => status.leaseRepairs === undefined ? [] : [[{}, status.leaseRepairs()]])
  counter(registry, 'keatrail_lease_wipes_ignored_total', 'Lease wipe lines not applied to lease history because the store keeps its bound of wipes already (each batch logged; its time recorded as a collection gap)', [], () => status.leaseWipesIgnored === undefined ? [] : [[{}, status.leaseWipesIgnored()]])
  gauge(registry, 'keatrail_deadletter_events', 'Events waiting in the dead-letter store (keatrail deadletter list|retry)', [], () => [[{}, status.deadLetters?.() ?? 0]])
  counter(registry, 'keatrail_deadletter_dropped_events_total', 'Dead-lettered events removed because the dead-letter store was full (lost; each overflow is logged)', [], () => [[{}, status.deadLettersDropped?.() ?? 0]])
}
