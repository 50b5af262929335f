import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { KeaConfigError } from '../errors.js'
import { defaultPatternForOutput } from '../parse/patterns.js'

/**
 * Kea's JSON dialect allows `//`, `/* … *\/` and `#` comments outside strings, and a trailing
 * comma before `}` or `]` (Debian's shipped kea-dhcp4.conf has one). jsonc-parser handles the
 * first two comment kinds but not `#`, so this small scanner removes all of it, keeping string
 * contents and line numbers intact.
 */
export function stripKeaComments (text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    const ch = text[i] as string
    if (ch === '"') {
      const end = stringEnd(text, i)
      out += text.slice(i, end)
      i = end
    } else if (ch === '#' || (ch === '/' && (text[i + 1] === '/' || text[i + 1] === '*'))) {
      const end = commentEnd(text, i)
      // Keep newlines so JSON.parse error positions still point at the right line.
      out += text.slice(i, end).replace(/[^\n]/g, ' ')
      i = end
    } else if (ch === ',' && /[}\]]/.test(text[skipInsignificant(text, i + 1)] ?? '')) {
      out += ' '
      i++
    } else {
      out += ch
      i++
    }
  }
  return out
}

/** Index just past the JSON string starting at `start` (a '"'). */
function stringEnd (text: string, start: number): number {
  let j = start + 1
  while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1
  return Math.min(j + 1, text.length)
}

/** Index just past the comment starting at `start` (#, // or /*). */
function commentEnd (text: string, start: number): number {
  if (text[start] === '/' && text[start + 1] === '*') {
    const end = text.indexOf('*/', start + 2)
    return end < 0 ? text.length : end + 2
  }
  const nl = text.indexOf('\n', start)
  return nl < 0 ? text.length : nl
}

/** Index of the next character that is neither white space nor inside a comment. */
function skipInsignificant (text: string, start: number): number {
  let j = start
  while (j < text.length) {
    const c = text[j] as string
    if (/\s/.test(c)) j++
    else if (c === '#' || (c === '/' && (text[j + 1] === '/' || text[j + 1] === '*'))) j = commentEnd(text, j)
    else break
  }
  return j
}

export interface KeaOutput {
  /** Daemon section the logger is in: Dhcp4, Dhcp6, DhcpDdns, Control-agent, … */
  daemon: string
  logger: string
  severity: string | undefined
  output: string
  pattern: string
  /** True when the config sets the pattern; false when Kea's default applies. */
  explicitPattern: boolean
  maxsize: number | undefined
  maxver: number | undefined
}

export function readKeaConfig (path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new KeaConfigError(path, (err as Error).message)
  }
  try {
    return JSON.parse(stripKeaComments(text)) as unknown
  } catch (err) {
    throw new KeaConfigError(path, `not valid JSON after removing comments: ${(err as Error).message}`)
  }
}

/** Every logger output in a Kea config (`output_options` ≤ 2.5.0, `output-options` later). */
export function keaOutputs (config: unknown, path: string): KeaOutput[] {
  if (config === null || typeof config !== 'object') throw new KeaConfigError(path, 'the top level is not an object')
  const outputs: KeaOutput[] = []
  for (const [daemon, section] of Object.entries(config as Record<string, unknown>)) {
    if (section === null || typeof section !== 'object') continue
    const loggers = (section as Record<string, unknown>).loggers
    if (!Array.isArray(loggers)) continue
    for (const logger of loggers as Array<Record<string, unknown>>) {
      const opts = (logger['output-options'] ?? logger.output_options) as Array<Record<string, unknown>> | undefined
      for (const o of opts ?? []) {
        const output = typeof o.output === 'string' ? o.output : 'stdout'
        const explicit = typeof o.pattern === 'string' && o.pattern !== ''
        outputs.push({
          daemon,
          logger: String(logger.name ?? ''),
          severity: typeof logger.severity === 'string' ? logger.severity : undefined,
          output,
          pattern: explicit ? o.pattern as string : defaultPatternForOutput(output),
          explicitPattern: explicit,
          maxsize: typeof o.maxsize === 'number' ? o.maxsize : undefined,
          maxver: typeof o.maxver === 'number' ? o.maxver : undefined
        })
      }
    }
  }
  return outputs
}

/** A subnet of a Kea config: its id, and its prefix (or a delegated-prefix pool outside it). */
export interface KeaSubnet { id: number, prefix: string }

function records (v: unknown): Array<Record<string, unknown>> {
  return Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => x !== null && typeof x === 'object') : []
}

/**
 * Every subnet of the DHCPv4 and DHCPv6 sections (shared networks' too), with the delegated-prefix
 * pools of DHCPv6 subnets (a pool's prefix usually lies outside the subnet: an entry of its own
 * with the subnet's id). Subnets without an id (Kea numbers them itself) are left out: their id
 * is not known here.
 */
export function keaSubnets (config: unknown): KeaSubnet[] {
  const out: KeaSubnet[] = []
  const root = config !== null && typeof config === 'object' ? config as Record<string, unknown> : {}
  for (const [daemon, key] of [['Dhcp4', 'subnet4'], ['Dhcp6', 'subnet6']] as const) {
    const section = root[daemon]
    if (section === null || typeof section !== 'object') continue
    const sec = section as Record<string, unknown>
    const subnets = [...records(sec[key]), ...records(sec['shared-networks']).flatMap((n) => records(n[key]))]
    for (const sub of subnets) {
      // Id 0 (or none): Kea numbers the subnet itself.
      if (typeof sub.id !== 'number' || sub.id < 1 || typeof sub.subnet !== 'string') continue
      out.push({ id: sub.id, prefix: sub.subnet })
      for (const pd of records(sub['pd-pools'])) {
        if (typeof pd.prefix === 'string' && typeof pd['prefix-len'] === 'number') out.push({ id: sub.id, prefix: `${pd.prefix}/${pd['prefix-len']}` })
      }
    }
  }
  return out
}

/** An HA relationship of a Kea config (libdhcp_ha.so): this server's name and its peers'. */
export interface KeaHaPeers { self: string, peers: string[] }

/** The HA relationships the DHCPv4 and DHCPv6 sections' libdhcp_ha.so parameters configure. */
export function keaHaPeers (config: unknown): KeaHaPeers[] {
  const out: KeaHaPeers[] = []
  const root = config !== null && typeof config === 'object' ? config as Record<string, unknown> : {}
  for (const daemon of ['Dhcp4', 'Dhcp6']) {
    const section = root[daemon]
    if (section === null || typeof section !== 'object') continue
    for (const lib of records((section as Record<string, unknown>)['hooks-libraries'])) {
      if (typeof lib.library !== 'string' || !lib.library.endsWith('libdhcp_ha.so')) continue
      const params = lib.parameters !== null && typeof lib.parameters === 'object' ? lib.parameters as Record<string, unknown> : {}
      for (const rel of records(params['high-availability'])) {
        const self = rel['this-server-name']
        const peers = records(rel.peers).map((p) => p.name).filter((n): n is string => typeof n === 'string')
        if (typeof self === 'string' && peers.length > 1) out.push({ self, peers })
      }
    }
  }
  return out
}

/**
 * The pattern of one output named on the command line: its exact `output` value, its file
 * name, or `stdout` / `syslog`. Without a name the config must have exactly one output.
 */
export function patternFromKeaConfig (path: string, outputName: string | undefined): KeaOutput {
  const outputs = keaOutputs(readKeaConfig(path), path)
  if (outputs.length === 0) throw new KeaConfigError(path, 'it has no loggers with output options')
  if (outputName === undefined) {
    const distinct = new Set(outputs.map((o) => o.output))
    if (distinct.size > 1) {
      throw new KeaConfigError(path, `it has several outputs (${[...distinct].join(', ')}); choose one with --output`)
    }
    return outputs[0] as KeaOutput
  }
  const found = outputs.find((o) => o.output === outputName) ??
    outputs.find((o) => basename(o.output) === basename(outputName)) ??
    outputs.find((o) => outputName === 'syslog' && o.output.startsWith('syslog'))
  if (found === undefined) {
    throw new KeaConfigError(path, `no output named ${JSON.stringify(outputName)}; it has ${outputs.map((o) => JSON.stringify(o.output)).join(', ')}`)
  }
  return found
}
