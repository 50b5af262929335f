import { hostname } from 'node:os'
import { basename, dirname, isAbsolute, join, normalize, resolve } from 'node:path'
import { Option, type Command } from 'commander'
import { stringify } from 'yaml'
import { parseConfig } from '../config/config.js'
import { INSTALL_LOG_CODES } from '../errors.js'
import { keaHaPeers, keaOutputs, keaSubnets, readKeaConfig, type KeaOutput } from '../kea/kea-config.js'
import { builtinPatterns } from '../parse/patterns.js'
import { parsePort } from './options.js'
import { writeOutput } from './output.js'
import type { CliIo } from './parse.js'

/** Debian's systemd units for each Kea daemon section (for stdout/stderr outputs). */
const UNITS: Record<string, string> = {
  Dhcp4: 'kea-dhcp4-server.service',
  Dhcp6: 'kea-dhcp6-server.service',
  DhcpDdns: 'kea-dhcp-ddns-server.service',
  'Control-agent': 'kea-ctrl-agent.service'
}
const KEA_LOG_DIR = '/var/log/kea'
/**
 * What the systemd unit (deploy/keatrail.service) gives keatrail: StateDirectory=keatrail is
 * /var/lib/keatrail, owned by its user. The config's own default (./data) is relative to
 * wherever the service happens to start, which under systemd is / (read-only there).
 */
export const SERVICE_DATA_DIR = '/var/lib/keatrail'

export function registerDiscover (program: Command, io: CliIo): void {
  program.command('discover')
    .description('Write a keatrail config that follows the outputs of these Kea configurations')
    .argument('<kea-configs...>', 'e.g. /etc/kea/kea-dhcp4.conf /etc/kea/kea-dhcp6.conf')
    .option('--out <file>', 'write the config here instead of stdout (an existing file only with --force)')
    .option('--force', 'replace --out if it exists')
    .option('--data-dir <dir>', `dataDir of the config (default ${SERVICE_DATA_DIR}, the systemd unit's StateDirectory)`, SERVICE_DATA_DIR)
    .addOption(new Option('--syslog-port <port>', 'where keatrail receives syslog forwarded by rsyslog/syslog-ng').argParser(parsePort).default(5514))
    .option('--server <name>', 'host.name of this Kea server\'s events (its subnets and HA pair in leases:); default: this host\'s name, as the sources record it', hostname())
    .action((files: string[], o: { out?: string, force?: boolean, dataDir: string, syslogPort: number, server: string }) => {
      // Absolute: a relative dataDir would be read against whatever directory `run` starts in.
      const { yaml, warnings } = discover(files, resolve(o.dataDir), o.syslogPort, o.server)
      if (o.out === undefined) io.stdout.write(yaml)
      else {
        // The refusal is the one line printed: the warnings are about a config not written.
        writeOutput(o.out, yaml, o.force === true, 'keatrail discover')
      }
      for (const w of warnings) io.stderr.write(`keatrail: ${w.code}: ${w.message}\n`)
    })
}

/** A shortest name from the pattern: a built-in's name, or the pattern itself. */
function patternName (pattern: string): string {
  return Object.entries(builtinPatterns()).find(([, p]) => p.pattern === pattern)?.[0] ?? pattern
}

/** Something the operator should know about a Kea config; discover writes the config anyway. */
export interface DiscoverWarning {
  code: string
  message: string
}

export function discover (files: readonly string[], dataDir: string, syslogPort: number, server = hostname()): { yaml: string, warnings: DiscoverWarning[] } {
  const sources: Array<Record<string, unknown>> = []
  const notes: string[] = []
  const warnings: DiscoverWarning[] = []
  // One journal source per systemd unit: journalctl -u reads the unit's whole journal, so a
  // second source for another of its loggers (or for stdout and stderr) would read it twice.
  const journals = new Map<string, Record<string, unknown>>()
  const names = new Set<string>()
  const unique = (base: string): string => {
    let n = base.replace(/[^A-Za-z0-9_.-]/g, '-')
    for (let i = 2; names.has(n); i++) n = `${base}-${i}`
    names.add(n)
    return n
  }
  let syslog: Record<string, unknown> | undefined
  // What lease history needs of the Kea configs: the subnets (lease wipes of a subnet end the
  // leases in it) and the HA pair (its servers' leases have one history).
  const subnets = new Map<string, { server: string, id: number, prefix: string }>()
  /** HA relationships as sets of servers; those sharing a server are one lease domain (a hub with several partners, DHCPv4 and DHCPv6 peers). */
  const pairs: Array<Set<string>> = []
  for (const file of files) {
    const config = readKeaConfig(file)
    for (const s of keaSubnets(config)) subnets.set(`${s.id}|${s.prefix}`, { server, id: s.id, prefix: s.prefix })
    for (const ha of keaHaPeers(config)) {
      // Kea names peers in its HA configuration; keatrail knows servers by their events'
      // host.name. This one is `server`; the others keep their HA names, to be checked.
      pairs.push(new Set(ha.peers.map((p) => p === ha.self ? server : p)))
      notes.push(`${file}: HA peers ${ha.peers.join(', ')} (this one: ${ha.self}, written as ${server}); leases.domains names the others by their HA names: make each the host.name its logs carry.`)
    }
    const outputs: KeaOutput[] = keaOutputs(config, file)
    if (outputs.length === 0) {
      const daemons = Object.keys(config as Record<string, unknown>).filter((k) => UNITS[k] !== undefined)
      const where = daemons.map((d) => `the journal of ${UNITS[d] as string}`).join(', ')
      warnings.push({
        code: INSTALL_LOG_CODES.keaNoLoggers,
        message: `${file} has no loggers with output options, so nothing was written for it: Kea then logs INFO to stdout${where === '' ? '' : ` (under systemd, ${where})`}; add "loggers" with a file output, or a journal source`
      })
    }
    for (const out of outputs) {
      const daemon = out.daemon.toLowerCase()
      if (out.output === 'stdout' || out.output === 'stderr') {
        const unit = UNITS[out.daemon] ?? `kea-${daemon}.service`
        const pattern = patternName(out.pattern)
        const known = journals.get(unit)
        if (known === undefined) {
          const source = { type: 'journal', name: unique(`${daemon}-journal`), units: [unit], pattern }
          journals.set(unit, source)
          sources.push(source)
          notes.push(`${file}: ${out.daemon} logs to ${out.output}; under systemd that is the journal of ${unit}.`)
        } else if (known.pattern !== pattern) {
          notes.push(`${file}: ${out.daemon} logs to ${out.output} too, with another pattern (${pattern}); source ${String(known.name)} reads ${unit} with ${String(known.pattern)}.`)
        }
      } else if (out.output.startsWith('syslog')) {
        if (syslog === undefined) {
          syslog = { type: 'syslog', name: unique('syslog'), udp: { host: '127.0.0.1', port: syslogPort }, tcp: { host: '127.0.0.1', port: syslogPort }, pattern: patternName(out.pattern) }
          sources.push(syslog)
        }
        notes.push(`${file}: ${out.daemon} logs to ${out.output} (logger ${out.logger}); forward it to keatrail, e.g. rsyslog: if $programname startswith 'kea-' then @@127.0.0.1:${syslogPort}`)
      } else {
        const path = isAbsolute(out.output) ? out.output : join(KEA_LOG_DIR, out.output)
        // Since the fix for CVE-2025-32802 Kea refuses to start with a log file in any other
        // directory (its parent exactly: not a subdirectory either), unless its environment
        // names that directory; a config written for 2.2 then stops the upgraded server.
        if (dirname(normalize(path)) !== KEA_LOG_DIR) {
          warnings.push({
            code: INSTALL_LOG_CODES.keaLogPath,
            message: `${file}: ${out.daemon} logs to ${path}, outside ${KEA_LOG_DIR}: Kea 2.4.2, 2.6.3, 3.0.1 and later refuse to start with it unless the daemon's environment sets KEA_LOG_FILE_DIR=${dirname(path)} (older Kea accept it)`
          })
        }
        // The rotated files (.1, .2 …) too: a file renamed while keatrail was down is still read.
        sources.push({ type: 'file', name: unique(`${daemon}-${basename(path).replace(/\.log$/, '')}`), include: [`${path}*`], pattern: patternName(out.pattern) })
        if (out.maxsize !== 0) notes.push(`${file}: ${path} rotates at ${out.maxsize ?? 10240000} bytes keeping ${out.maxver ?? 1} old file(s); keatrail follows the renames.`)
      }
    }
  }
  const domains = mergeShared(pairs).filter((s) => s.size > 1).map((s) => {
    const servers = [...s].sort()
    return { name: `ha-${servers.join('-')}`, servers }
  })
  const leases = {
    ...(subnets.size === 0 ? {} : { subnets: [...subnets.values()] }),
    ...(domains.length === 0 ? {} : { domains })
  }
  const config = { dataDir, store: { type: 'sqlite' }, sources, ...(Object.keys(leases).length === 0 ? {} : { leases }) }
  parseConfig(config, 'discovered config')
  const header = ['# keatrail configuration written by `keatrail discover` from:', ...files.map((f) => `#   ${f}`), '#', ...notes.map((n) => `# ${n}`), '']
  return { yaml: header.join('\n') + stringify(config, { lineWidth: 0 }), warnings }
}

/** Sets that share a member merged into one (a server's leases have one history: one domain). */
function mergeShared (sets: ReadonlyArray<Set<string>>): Array<Set<string>> {
  const out: Array<Set<string>> = []
  for (const s of sets) {
    let into = new Set(s)
    for (let i = out.length - 1; i >= 0; i--) {
      const o = out[i] as Set<string>
      if ([...o].some((m) => into.has(m))) { into = new Set([...o, ...into]); out.splice(i, 1) }
    }
    out.push(into)
  }
  return out
}
