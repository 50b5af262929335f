import { dashboard, dataView, lens, search, type SavedObject } from './saved-objects.js'

// keatrail's Kibana objects. Ids are fixed (keatrail-*): re-importing overwrites, never duplicates.
// Field names come from mappings/ (test/dashboards checks them there and in a real cluster).

export const DATA_VIEWS = {
  events: 'keatrail-events',
  leases: 'keatrail-lease-intervals',
  snapshots: 'keatrail-snapshots'
} as const

function dataViews (): SavedObject[] {
  return [
    dataView({
      id: DATA_VIEWS.events,
      title: 'logs-kea.*-*',
      name: 'Kea events (keatrail)',
      fieldFormats: {
        'client.mac': { id: 'string', params: { transform: 'upper' } },
        'kea.hwaddr': { id: 'string', params: { transform: 'lower' } },
        'client.ip': { id: 'ip' },
        'related.ip': { id: 'ip' },
        'kea.lease.lifetime': { id: 'duration', params: { inputFormat: 'seconds', outputFormat: 'humanize' } }
      }
    }),
    dataView({
      id: DATA_VIEWS.leases,
      title: 'keatrail-leases-*',
      name: 'Kea lease intervals (keatrail)',
      fieldFormats: {
        mac: { id: 'string', params: { transform: 'upper' } },
        start: { id: 'date', params: { pattern: 'YYYY-MM-DD HH:mm:ss.SSS' } },
        end: { id: 'date', params: { pattern: 'YYYY-MM-DD HH:mm:ss.SSS' } },
        lifetime: { id: 'duration', params: { inputFormat: 'seconds', outputFormat: 'humanize' } }
      }
    }),
    dataView({
      id: DATA_VIEWS.snapshots,
      title: 'keatrail-snapshots-*',
      name: 'Kea server snapshots (keatrail)',
      fieldFormats: {
        'pool.utilization': { id: 'number', params: { pattern: '0.0' } },
        'totals.utilization': { id: 'number', params: { pattern: '0.0' } }
      }
    })
  ]
}

const E = DATA_VIEWS.events
const S = DATA_VIEWS.snapshots
const L = DATA_VIEWS.leases
const LEASE_ACTIONS = 'event.action : ("allocate" or "renew" or "reuse" or "release" or "decline" or "nak")'

function overview (): SavedObject[] {
  const bySeverity = lens({
    id: 'keatrail-lens-events-by-severity', title: 'Events over time by severity', dataView: E,
    columns: { t: { kind: 'date', field: '@timestamp' }, lvl: { kind: 'terms', field: 'log.level', size: 6, orderBy: 'n' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'lvl' }
  })
  const topIds = lens({
    id: 'keatrail-lens-top-message-ids', title: 'Top message IDs', dataView: E,
    columns: { id: { kind: 'terms', field: 'event.code', size: 15, orderBy: 'n', label: 'Message ID' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'bar_horizontal', x: 'id', y: ['n'] }
  })
  const topLoggers = lens({
    id: 'keatrail-lens-top-loggers', title: 'Top loggers', dataView: E,
    columns: { lg: { kind: 'terms', field: 'log.logger', size: 10, orderBy: 'n', label: 'Logger' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'bar_horizontal', x: 'lg', y: ['n'] }
  })
  const perServer = lens({
    id: 'keatrail-lens-events-per-server', title: 'Events per server', dataView: E,
    columns: { t: { kind: 'date', field: '@timestamp' }, h: { kind: 'terms', field: 'host.name', size: 10, orderBy: 'n', label: 'Server' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'line', x: 't', y: ['n'], split: 'h' }
  })
  const problems = search({
    id: 'keatrail-search-warnings-errors', title: 'Kea warnings and errors', dataView: E,
    query: 'log.level : ("warn" or "error" or "fatal")', columns: ['host.name', 'log.level', 'event.code', 'message']
  })
  const board = dashboard('keatrail-dashboard-overview', 'Kea overview (keatrail)', 'What Kea logged: volume by severity, message IDs, loggers, servers, and every warning and error.', [
    { object: bySeverity, w: 32, h: 12 }, { object: perServer, w: 16, h: 12 },
    { object: topIds, w: 24, h: 14 }, { object: topLoggers, w: 24, h: 14 },
    { object: problems, w: 48, h: 16 }
  ])
  return [bySeverity, topIds, topLoggers, perServer, problems, board]
}

function leases (): SavedObject[] {
  const actions = lens({
    id: 'keatrail-lens-lease-actions', title: 'Allocations, renewals, releases, declines and NAKs', dataView: E, query: LEASE_ACTIONS,
    columns: { t: { kind: 'date', field: '@timestamp' }, a: { kind: 'terms', field: 'event.action', size: 8, orderBy: 'n', label: 'Action' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'a' }
  })
  const failures = lens({
    id: 'keatrail-lens-alloc-failures', title: 'Allocation failures (pool exhausted, no subnet)', dataView: E, query: 'event.action : "alloc-fail"',
    columns: { t: { kind: 'date', field: '@timestamp' }, h: { kind: 'terms', field: 'host.name', size: 10, orderBy: 'n', label: 'Server' }, n: { kind: 'count' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'h' }
  })
  const churnV4 = lens({
    id: 'keatrail-lens-churn-mac', title: 'Top DHCPv4 clients by churn', dataView: E, query: LEASE_ACTIONS,
    columns: { m: { kind: 'terms', field: 'client.mac', size: 15, orderBy: 'n', label: 'MAC' }, n: { kind: 'count', label: 'Lease events' } },
    vis: { type: 'table', columns: ['m', 'n'] }
  })
  const churnV6 = lens({
    id: 'keatrail-lens-churn-duid', title: 'Top DHCPv6 clients by churn', dataView: E, query: LEASE_ACTIONS,
    columns: { d: { kind: 'terms', field: 'kea.duid', size: 15, orderBy: 'n', label: 'DUID' }, n: { kind: 'count', label: 'Lease events' } },
    vis: { type: 'table', columns: ['d', 'n'] }
  })
  const intervals = lens({
    id: 'keatrail-lens-lease-intervals', title: 'Lease intervals by how they ended', dataView: L,
    columns: { t: { kind: 'date', field: '@timestamp' }, r: { kind: 'terms', field: 'end_reason', size: 8, orderBy: 'n', label: 'End' }, n: { kind: 'count', label: 'Leases' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'r' }
  })
  const forensic = search({
    id: 'keatrail-search-lease-events', title: 'Lease events (forensics)', dataView: E, query: 'event.action : *',
    columns: ['host.name', 'event.action', 'client.ip', 'kea.lease.prefix', 'client.mac', 'kea.client_id', 'kea.duid', 'kea.iaid', 'kea.hostname', 'message']
  })
  const held = search({
    id: 'keatrail-search-lease-intervals', title: 'Who held which address (lease intervals)', dataView: L, query: '',
    columns: ['scope', 'lease', 'mac', 'client_id', 'duid', 'iaid', 'hostname', 'start', 'end', 'end_reason', 'certainty']
  })
  const board = dashboard('keatrail-dashboard-leases', 'Kea leases (keatrail)', 'Lease activity, allocation failures, client churn, and the lease intervals keatrail derived (who held which address when).', [
    { object: actions, w: 32, h: 12 }, { object: failures, w: 16, h: 12 },
    { object: churnV4, w: 16, h: 14 }, { object: churnV6, w: 16, h: 14 }, { object: intervals, w: 16, h: 14 },
    { object: forensic, w: 48, h: 16 }, { object: held, w: 48, h: 16 }
  ])
  return [actions, failures, churnV4, churnV6, intervals, forensic, held, board]
}

function pools (): SavedObject[] {
  const perSubnet = lens({
    id: 'keatrail-lens-subnet-utilization', title: 'Pool utilization per subnet (%)', dataView: S, query: 'kind : "subnet"',
    columns: { t: { kind: 'date', field: '@timestamp' }, s: { kind: 'terms', field: 'pool.subnet', size: 20, orderBy: 'u', label: 'Subnet' }, u: { kind: 'max', field: 'pool.utilization', label: 'Utilization %' } },
    vis: { type: 'xy', series: 'line', x: 't', y: ['u'], split: 's' }
  })
  const perNetwork = lens({
    id: 'keatrail-lens-network-utilization', title: 'Pool utilization per shared network (%)', dataView: S, query: 'kind : "shared-network"',
    columns: { t: { kind: 'date', field: '@timestamp' }, s: { kind: 'terms', field: 'pool.shared_network', size: 20, orderBy: 'u', label: 'Shared network' }, u: { kind: 'max', field: 'pool.utilization', label: 'Utilization %' } },
    vis: { type: 'xy', series: 'line', x: 't', y: ['u'], split: 's' }
  })
  const ha = lens({
    id: 'keatrail-lens-ha-states', title: 'HA state over time', dataView: S, query: 'kind : "server"',
    columns: { t: { kind: 'date', field: '@timestamp' }, st: { kind: 'terms', field: 'ha.local_state', size: 10, orderBy: 'n', label: 'HA state' }, n: { kind: 'count', label: 'Snapshots' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'st' }
  })
  const updown = lens({
    id: 'keatrail-lens-server-state', title: 'Servers up / unreachable', dataView: S, query: 'kind : "server"',
    columns: { t: { kind: 'date', field: '@timestamp' }, st: { kind: 'terms', field: 'state', size: 3, orderBy: 'n', label: 'State' }, n: { kind: 'count', label: 'Snapshots' } },
    vis: { type: 'xy', series: 'bar_stacked', x: 't', y: ['n'], split: 'st' }
  })
  const latest = lens({
    id: 'keatrail-lens-servers-latest', title: 'Servers now', dataView: S, query: 'kind : "server"',
    columns: {
      srv: { kind: 'terms', field: 'key', size: 50, label: 'Server / service' },
      state: { kind: 'last_value', field: 'state', label: 'State' },
      ha: { kind: 'last_value', field: 'ha.local_state', label: 'HA' },
      u: { kind: 'last_value', field: 'totals.utilization', label: 'Utilization %', number: true }
    },
    vis: { type: 'table', columns: ['srv', 'state', 'ha', 'u'] }
  })
  const alerts = search({
    id: 'keatrail-search-depletion-alerts', title: 'Pool depletion alerts', dataView: E, query: 'event.kind : "alert"',
    columns: ['host.name', 'event.code', 'kea.subnet_id', 'kea.subnet', 'kea.shared_network', 'message']
  })
  const board = dashboard('keatrail-dashboard-pools', 'Kea pools and servers (keatrail)', 'Pool utilization per subnet and shared network, HA state, server availability and depletion alerts, from Kea status snapshots.', [
    { object: perSubnet, w: 24, h: 14 }, { object: perNetwork, w: 24, h: 14 },
    { object: ha, w: 16, h: 12 }, { object: updown, w: 16, h: 12 }, { object: latest, w: 16, h: 12 },
    { object: alerts, w: 48, h: 14 }
  ])
  return [perSubnet, perNetwork, ha, updown, latest, alerts, board]
}

/** File name in dashboards/ → its objects. The data views come first: the others refer to them. */
export function dashboardFiles (): Map<string, SavedObject[]> {
  return new Map([
    ['keatrail-data-views.ndjson', dataViews()],
    ['keatrail-overview.ndjson', overview()],
    ['keatrail-leases.ndjson', leases()],
    ['keatrail-pools.ndjson', pools()]
  ])
}
