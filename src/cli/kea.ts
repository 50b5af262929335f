import { Option, type Command } from 'commander'
import { resolveConfig } from '../app/config.js'
import { SILENT_LOG } from '../app/logger.js'
import { UsageError } from '../errors.js'
import { KeaPoller, keaConfigSchema } from '../kea/poller.js'
import type { KeaSnapshot } from '../kea/snapshot.js'
import type { CliIo } from './parse.js'

interface StatusOptions {
  config?: string
  server?: string
  url?: string
  socket?: string
  service?: string[]
  json?: boolean
}

function bar (pct: number, width = 20): string {
  const full = Math.round((Math.min(Math.max(pct, 0), 100) / 100) * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`
}

function duration (s: number | undefined): string {
  if (s === undefined) return '?'
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172800) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} d`
}

/** The table `keatrail kea status` prints. */
export function renderStatus (snaps: readonly KeaSnapshot[]): string {
  const lines: string[] = []
  for (const s of snaps) {
    if (s.state !== 'up') {
      lines.push(`${s.server} ${s.service}: ${s.state.toUpperCase()}: ${s.error?.message ?? ''}`)
      continue
    }
    const ha = (s.ha ?? []).map((h) => `HA ${h.mode ?? ''} ${h.local_role ?? ''} ${h.local_state ?? ''}, partner ${h.remote_role ?? '?'} ${h.remote_state ?? '?'}${h.in_touch === false ? ' (not in touch)' : ''}`).join('; ')
    lines.push(`${s.server} ${s.service}: up, Kea ${s.version ?? '?'}, pid ${s.pid ?? '?'}, up ${duration(s.uptime)}, last reload ${duration(s.reload)} ago${ha === '' ? '' : `, ${ha}`}`)
    const row = (label: string, u: { utilization: number, assigned: number, total: number, free: number, declined: number }): string =>
      `  ${label.padEnd(34)} ${bar(u.utilization)} ${u.utilization.toFixed(1).padStart(5)} %  ${u.assigned}/${u.total} (${u.free} free, ${u.declined} declined)`
    for (const u of s.subnets) {
      lines.push(row(`subnet ${u.id}${u.subnet === undefined ? '' : ` ${u.subnet}`}`, u))
      if (u.pd_total !== undefined && u.pd_total > 0) lines.push(`  ${'  delegated prefixes'.padEnd(34)} ${bar(u.pd_utilization ?? 0)} ${(u.pd_utilization ?? 0).toFixed(1).padStart(5)} %  ${u.pd_assigned ?? 0}/${u.pd_total}`)
    }
    for (const n of s.shared_networks) lines.push(row(`shared network ${n.name}`, n))
  }
  return lines.join('\n') + '\n'
}

export function registerKea (program: Command, io: CliIo): void {
  const kea = program.command('kea').description('Kea servers: live status from the Control Agent or control sockets')
  kea.command('status')
    .description('Poll Kea now and print servers, HA state and pool utilization (nothing is stored)')
    .option('--config <file>', 'keatrail.yaml with kea.servers')
    .option('--server <name>', 'only this server of the config')
    .option('--url <url>', 'a Control Agent (or Kea 3.x daemon) URL, instead of --config')
    .option('--socket <path>', 'a local daemon\'s unix control socket, instead of --config')
    .addOption(new Option('--service <s...>', 'dhcp4 and/or dhcp6 (with --url)').choices(['dhcp4', 'dhcp6']).default(['dhcp4']))
    .option('--json', 'print the snapshots as JSON')
    .action(async (o: StatusOptions) => {
      let cfg
      if (o.url !== undefined || o.socket !== undefined) {
        cfg = keaConfigSchema.parse({ servers: [{ name: o.server ?? 'kea', ...(o.url === undefined ? { socket: o.socket } : { url: o.url }), services: o.service }] })
      } else if (o.config !== undefined) {
        cfg = resolveConfig(o.config, {}).kea
        if (o.server !== undefined) cfg = { ...cfg, servers: cfg.servers.filter((s) => s.name === o.server) }
      } else {
        throw new UsageError('give --config keatrail.yaml (kea.servers), --url or --socket')
      }
      if (cfg.servers.length === 0) throw new UsageError(o.server === undefined ? 'no Kea servers configured (kea.servers)' : `no Kea server named ${JSON.stringify(o.server)} in the config`)
      const poller = new KeaPoller(cfg, undefined, SILENT_LOG)
      const snaps = (await Promise.all(poller.clients.map(async (c) => await poller.snapshot(c)))).flat()
      io.stdout.write(o.json === true ? JSON.stringify(snaps) + '\n' : renderStatus(snaps))
      io.exitCode = snaps.every((s) => s.state === 'up') ? 0 : 1
    })
}
