import { writeFileSync } from 'node:fs'
import { basename, isAbsolute, join } from 'node:path'
import { Option, type Command } from 'commander'
import { stringify } from 'yaml'
import { parseConfig } from '../config/config.js'
import { keaOutputs, readKeaConfig, type KeaOutput } from '../kea/kea-config.js'
import { builtinPatterns } from '../parse/patterns.js'
import { parsePort } from './options.js'
import type { CliIo } from './parse.js'

/** Debian's systemd units for each Kea daemon section (for stdout/stderr outputs). */
const UNITS: Record<string, string> = {
  Dhcp4: 'kea-dhcp4-server.service',
  Dhcp6: 'kea-dhcp6-server.service',
  DhcpDdns: 'kea-dhcp-ddns-server.service',
  'Control-agent': 'kea-ctrl-agent.service'
}
const KEA_LOG_DIR = '/var/log/kea'

export function registerDiscover (program: Command, io: CliIo): void {
  program.command('discover')
    .description('Write a keatrail config that follows the outputs of these Kea configurations')
    .argument('<kea-configs...>', 'e.g. /etc/kea/kea-dhcp4.conf /etc/kea/kea-dhcp6.conf')
    .option('--out <file>', 'write the config here instead of stdout')
    .option('--data-dir <dir>', 'dataDir of the config (default: the config\'s default, ./data)')
    .addOption(new Option('--syslog-port <port>', 'where keatrail receives syslog forwarded by rsyslog/syslog-ng').argParser(parsePort).default(5514))
    .action((files: string[], o: { out?: string, dataDir?: string, syslogPort: number }) => {
      const yaml = discover(files, o.dataDir, o.syslogPort)
      if (o.out === undefined) io.stdout.write(yaml)
      else writeFileSync(o.out, yaml)
    })
}

/** A shortest name from the pattern: a built-in's name, or the pattern itself. */
function patternName (pattern: string): string {
  return Object.entries(builtinPatterns()).find(([, p]) => p.pattern === pattern)?.[0] ?? pattern
}

export function discover (files: readonly string[], dataDir: string | undefined, syslogPort: number): string {
  const sources: Array<Record<string, unknown>> = []
  const notes: string[] = []
  const names = new Set<string>()
  const unique = (base: string): string => {
    let n = base.replace(/[^A-Za-z0-9_.-]/g, '-')
    for (let i = 2; names.has(n); i++) n = `${base}-${i}`
    names.add(n)
    return n
  }
  let syslog: Record<string, unknown> | undefined
  for (const file of files) {
    const outputs: KeaOutput[] = keaOutputs(readKeaConfig(file), file)
    for (const out of outputs) {
      const daemon = out.daemon.toLowerCase()
      if (out.output === 'stdout' || out.output === 'stderr') {
        const unit = UNITS[out.daemon] ?? `kea-${daemon}.service`
        sources.push({ type: 'journal', name: unique(`${daemon}-journal`), units: [unit], pattern: patternName(out.pattern) })
        notes.push(`${file}: ${out.daemon} logs to ${out.output}; under systemd that is the journal of ${unit}.`)
      } else if (out.output.startsWith('syslog')) {
        if (syslog === undefined) {
          syslog = { type: 'syslog', name: unique('syslog'), udp: { host: '127.0.0.1', port: syslogPort }, tcp: { host: '127.0.0.1', port: syslogPort }, pattern: patternName(out.pattern) }
          sources.push(syslog)
        }
        notes.push(`${file}: ${out.daemon} logs to ${out.output} (logger ${out.logger}); forward it to keatrail, e.g. rsyslog: if $programname startswith 'kea-' then @@127.0.0.1:${syslogPort}`)
      } else {
        const path = isAbsolute(out.output) ? out.output : join(KEA_LOG_DIR, out.output)
        // The rotated files (.1, .2 …) too: a file renamed while keatrail was down is still read.
        sources.push({ type: 'file', name: unique(`${daemon}-${basename(path).replace(/\.log$/, '')}`), include: [`${path}*`], pattern: patternName(out.pattern) })
        if (out.maxsize !== 0) notes.push(`${file}: ${path} rotates at ${out.maxsize ?? 10240000} bytes keeping ${out.maxver ?? 1} old file(s); keatrail follows the renames.`)
      }
    }
  }
  const config = { ...(dataDir === undefined ? {} : { dataDir }), store: { type: 'sqlite' }, sources }
  parseConfig(config, 'discovered config')
  const header = ['# keatrail configuration written by `keatrail discover` from:', ...files.map((f) => `#   ${f}`), '#', ...notes.map((n) => `# ${n}`), '']
  return header.join('\n') + stringify(config, { lineWidth: 0 })
}
