import { readFileSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { InputReadError, UsageError } from '../errors.js'
import { parseTime } from '../leases/address.js'
import { memfileIntervals, parseMemfile } from '../leases/memfile.js'
import { historyPage, holderAt } from '../leases/query.js'
import { seedKeaState } from '../leases/seed.js'
import type { Holder, HistoryQuery } from '../leases/types.js'
import type { Store } from '../store/types.js'
import { registerAttribute } from './attribute.js'
import { registerReport } from './report.js'
import { parseTimeZone } from './options.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, withCommandStore, type StoreOptions } from './store-options.js'

interface LeaseOptions extends StoreOptions {
  json?: boolean
  scope?: string
  tz?: string
}

interface HistoryOptions extends LeaseOptions {
  address?: string
  prefix?: string
  mac?: string
  clientId?: string
  duid?: string
  hostname?: string
  from?: string
  to?: string
}

/** `2026-11-24 05:16:00.000 Europe/Berlin`: the same instant on the server's clock. */
function local (iso: string | null, zone: string | undefined): string {
  if (iso === null) return '?'
  if (zone === undefined) return iso
  const d = new Date(iso)
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(d)
  return `${parts.replace(',', '')}.${String(d.getUTCMilliseconds()).padStart(3, '0')} ${zone}`
}

function who (h: Holder): string {
  const ids: string[] = []
  if (h.mac !== undefined) ids.push(`MAC ${h.mac}`)
  if (h.client_id !== undefined) ids.push(`client-id ${h.client_id}`)
  if (h.duid !== undefined) ids.push(`DUID ${h.duid}`)
  if (h.iaid !== undefined) ids.push(`IAID ${h.iaid}`)
  if (h.hostname !== undefined) ids.push(`hostname ${h.hostname}`)
  return ids.length === 0 ? '(no client identifier logged)' : ids.join(', ')
}

async function evidenceLines (store: Store, ids: readonly string[]): Promise<{ lines: string[], zone?: string }> {
  const lines: string[] = []
  let zone: string | undefined
  const found = new Map((await store.getMany(ids)).map((e) => [e.event.id, e]))
  for (const id of ids) {
    const e = found.get(id)
    if (e === undefined) { lines.push(`(event ${id} is no longer stored)`); continue }
    zone ??= e.event.timezone
    lines.push(e.event.original.split('\n')[0] ?? '')
  }
  return { lines, ...(zone === undefined ? {} : { zone }) }
}

async function describeHolder (store: Store, h: Holder, tz: string | undefined, indent: string): Promise<string> {
  const ev = await evidenceLines(store, h.evidence)
  const zone = tz ?? ev.zone
  const span = `${h.start ?? '(before collection)'} → ${h.end ?? '(open)'}`
  const out = [
    `${indent}${h.type === 'IA_PD' ? 'prefix' : 'address'} ${h.lease}${h.scope === '' ? ' (server not recorded)' : ` on ${h.scope}`}${h.servers === undefined ? '' : ` (${h.servers.join(', ')})`}: ${who(h)}`,
    `${indent}  ${span}  (${h.end_reason}, ${h.certainty}${h.origin === 'kea-state' ? ', from Kea\'s lease file' : ''})`
  ]
  if (zone !== undefined && zone !== 'UTC') out.push(`${indent}  local: ${local(h.start, zone)} → ${local(h.end, zone)}`)
  for (const l of ev.lines) out.push(`${indent}  | ${l}`)
  return out.join('\n')
}

export function registerLease (program: Command, io: CliIo): void {
  const lease = program.command('lease').description('Lease history: who held an address when, and every lease of a client')

  addStoreOptions(lease.command('at'))
    .description('Who held ADDRESS at TIME (RFC 3339 with offset); DHCPv6 addresses inside a delegated prefix find its holder')
    .argument('<address>', 'IPv4 or IPv6 address')
    .argument('<time>', 'RFC 3339 time with offset, e.g. 2026-11-24T04:16:00Z')
    .option('--scope <host>', 'only leases of this Kea server (host.name; a server in a lease domain: the domain\'s) or lease domain, and of events stored without one (imported before keatrail recorded the server)')
    .addOption(new Option('--tz <zone>', 'show local times in this IANA zone (default: the zone the logs were read in)').argParser(parseTimeZone))
    .option('--json', 'print one JSON object')
    .action(async (address: string, time: string, o: LeaseOptions) => {
      const t = parseTime(time)
      await withCommandStore(o, io, 'read', async (opened) => {
        const a = await holderAt(opened.store.leases, address, t, o.scope)
        if (o.json === true) { io.stdout.write(JSON.stringify(a) + '\n'); return }
        const lines = [`${a.address} at ${a.time}:`]
        if (!a.covered) lines.push(`  keatrail has no logs for this time${a.coverage === undefined ? '' : ` (collected ${a.coverage.from} … ${a.coverage.to})`}: the answer below says nothing about it.`)
        if (a.holders.length === 0) {
          lines.push('  nobody held it.')
          if (a.before !== undefined) lines.push('  before:', await describeHolder(opened.store, a.before, o.tz, '    '))
          if (a.after !== undefined) lines.push('  after:', await describeHolder(opened.store, a.after, o.tz, '    '))
        }
        for (const h of a.holders) lines.push(await describeHolder(opened.store, h, o.tz, '  '))
        io.stdout.write(lines.join('\n') + '\n')
      })
    })

  addStoreOptions(lease.command('history'))
    .description('Every lease of an address, a prefix or a client, in time order')
    .option('--address <a>', 'IPv4 or IPv6 address')
    .option('--prefix <p>', 'delegated prefix, e.g. 2001:db8:8000::/56')
    .option('--mac <m>', 'MAC in any spelling (also finds DHCPv6 clients whose DUID-LL/LLT holds it)')
    .option('--client-id <c>', 'DHCPv4 client identifier (with or without the type byte)')
    .option('--duid <d>', 'DHCPv6 DUID (or the link-layer address inside it)')
    .option('--hostname <h>', 'host name the client sent or was given')
    .option('--from <t>', 'RFC 3339 time with offset')
    .option('--to <t>', 'RFC 3339 time with offset')
    .option('--scope <host>', 'only leases of this Kea server (host.name; a server in a lease domain: the domain\'s) or lease domain, and of events stored without one (imported before keatrail recorded the server)')
    .addOption(new Option('--tz <zone>', 'show local times in this IANA zone').argParser(parseTimeZone))
    .option('--json', 'print one JSON object')
    .action(async (o: HistoryOptions) => {
      const q: HistoryQuery = {
        ...(o.address === undefined ? {} : { address: o.address }),
        ...(o.prefix === undefined ? {} : { prefix: o.prefix }),
        ...(o.mac === undefined ? {} : { mac: o.mac }),
        ...(o.clientId === undefined ? {} : { client_id: o.clientId }),
        ...(o.duid === undefined ? {} : { duid: o.duid }),
        ...(o.hostname === undefined ? {} : { hostname: o.hostname }),
        ...(o.from === undefined ? {} : { from: parseTime(o.from, '--from') }),
        ...(o.to === undefined ? {} : { to: parseTime(o.to, '--to') }),
        ...(o.scope === undefined ? {} : { scope: o.scope })
      }
      await withCommandStore(o, io, 'read', async (opened) => {
        const { intervals, truncated } = await historyPage(opened.store.leases, q)
        if (o.json === true) { io.stdout.write(JSON.stringify({ intervals, ...(truncated ? { truncated } : {}) }) + '\n'); return }
        if (intervals.length === 0) { io.stdout.write('no leases found.\n'); return }
        for (const h of intervals) io.stdout.write(await describeHolder(opened.store, h, o.tz, '') + '\n')
        if (truncated) io.stdout.write(`(the first ${intervals.length} intervals only: narrow --from/--to for the rest)\n`)
      })
    })

  registerAttribute(lease, io)
  registerReport(lease, io)

  addStoreOptions(lease.command('import-csv'))
    .description('Seed lease history from Kea\'s memfile lease file (leases allocated before log collection began)')
    .argument('<files...>', 'kea-leases4.csv / kea-leases6.csv (and rotated .1, .2 …: Kea\'s LFC output)')
    .option('--scope <host>', 'the Kea server these leases belong to (host.name of its events; in a lease domain, the domain\'s history; default: the only one the store has)')
    .action(async (files: string[], o: LeaseOptions) => {
      await withCommandStore(o, io, 'write', async (opened) => {
        let scope = o.scope
        if (scope === undefined) {
          const known = await opened.store.leases.scopes()
          if (known.length > 1) throw new UsageError(`the store holds logs of several Kea servers (${known.map((k) => JSON.stringify(k)).join(', ')}): say which with --scope`)
          scope = known[0] ?? ''
        }
        // A server in a lease domain: the domain's history.
        scope = opened.store.leases.domains?.scopeOf(scope) ?? scope
        let rows = 0
        let created = 0
        let confirmed = 0
        for (const file of files) {
          let text: string
          try { text = readFileSync(file, 'utf8') } catch (err) { throw new InputReadError(file, (err as Error).message) }
          const parsed = parseMemfile(text)
          rows += parsed.length
          const r = await seedKeaState(opened.store.leases, memfileIntervals(parsed, scope), scope)
          created += r.created
          confirmed += r.confirmed
        }
        io.stderr.write(`read ${rows} lease rows: ${created} new intervals from Kea's lease state, ${confirmed} already shown by the logs (scope ${JSON.stringify(scope)})\n`)
      })
    })
}
