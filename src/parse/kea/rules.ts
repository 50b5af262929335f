import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { RulesInvalidError } from '../../errors.js'
import { packageRoot } from '../../paths.js'
import { LEASE_ACTIONS } from '../event.js'
import { escapeRegex } from '../time/strftime.js'
import { LABEL_GROUPS, LABEL_SOURCE } from './label.js'

/** Placeholder roles usable in rule forms, with the text each may match. */
export const ROLE_SOURCES = {
  label: LABEL_SOURCE,
  address: '[0-9A-Fa-f:.]+',
  requested: '[0-9A-Fa-f:.]+|\\(no address\\)',
  ciaddr: '[0-9A-Fa-f:.]+',
  source: '[0-9A-Fa-f:.]+',
  prefix: '[0-9A-Fa-f:.]+',
  prefix_length: '\\d{1,3}',
  lifetime: '\\d+|infinity',
  probation: '\\d+',
  iaid: '\\d+',
  owner_iaid: '\\d+',
  owner_duid: '[0-9A-Fa-f:]+|no info',
  subnet_id: '\\d+',
  subnet: '[0-9A-Fa-f:.]+/\\d{1,3}',
  shared_network: '.*?',
  hostname: '.*?',
  fqdn_option: '.*',
  lease_type: 'V4|IA_NA|IA_PD|IA_TA',
  state: '[a-z][a-z-]*',
  server: '.*?',
  peer: '.*?',
  count: '\\d+',
  params: '\\{.*?\\}',
  lease_dump: '.*',
  text: '.*?'
} as const
export type Role = keyof typeof ROLE_SOURCES

const ruleSchema = z.object({
  action: z.enum(LEASE_ACTIONS).optional().describe('event.action for this message ID'),
  family: z.union([z.literal(4), z.literal(6)]).optional().describe('Address family, when the file default does not fit'),
  lease_type: z.enum(['V4', 'IA_NA', 'IA_PD', 'IA_TA']).optional().describe('Lease type the message is about'),
  prefix128_is_address: z.boolean().optional().describe('A /128 "prefix" is really an IA_NA address (reclaim messages)'),
  forms: z.array(z.string()).min(1).describe('Text forms after the message ID, with {role} placeholders')
}).strict()

const fileSchema = z.object({
  family: z.union([z.literal(4), z.literal(6)]).optional().describe('Default address family of the rules in this file'),
  rules: z.record(z.string().regex(/^[A-Z][A-Z0-9_]*$/), ruleSchema)
}).strict()

/** What one capture group of a compiled form holds: a role, or a part of a {label}. */
export type GroupRole = Exclude<Role, 'label'> | `label_${typeof LABEL_GROUPS[number]}`

export interface CompiledForm {
  form: string
  /** Longest message text (characters) the form is tried on; longer text gets the generic scan. */
  maxText: number
  regex: RegExp
  /** The placeholders, in order. */
  roles: Role[]
  /** The capture groups, in order (a {label} has several). */
  groups: GroupRole[]
}

export interface MessageRule {
  id: string
  action: typeof LEASE_ACTIONS[number] | undefined
  family: 4 | 6 | undefined
  leaseType: 'V4' | 'IA_NA' | 'IA_PD' | 'IA_TA' | undefined
  prefix128IsAddress: boolean
  forms: CompiledForm[]
  file: string
}

export type RuleSet = Map<string, MessageRule>

/**
 * Bounds on the text a form is tried on. A regex of several lazy roles (`.*?`) anchored at `$`
 * backtracks in a power of the length on text that almost matches: DHCP4_DECLINE_LEASE_MISMATCH's
 * four {text}s took 8.3 s on a crafted 64 KB syslog message, 1.1 s on 30 KB (3.6 ms at 4 KB);
 * forms with two lazy roles (lease-cmds failures: parameters and reason) 57 ms on 64 KB, one
 * ~100 ms. Kea writes the three-or-more kind in a few hundred characters, so longer text is
 * not theirs to read: it gets the generic scan and is marked partial ("does not match any
 * form"), its text kept. The others keep their whole 64 KB (a syslog message's default bound;
 * a lease-cmds parameter dump with a large user context runs to several KB).
 */
const FORM_TEXT_LAZY = 4096
const FORM_TEXT_MAX = 65536
const LAZY_ROLES = new Set<Role>(['shared_network', 'hostname', 'server', 'peer', 'params', 'text'])

const PLACEHOLDER = /\{([a-z_0-9]+)\}/g

export function compileForm (form: string, where: string): CompiledForm {
  const roles: Role[] = []
  const groups: GroupRole[] = []
  let source = '^'
  let last = 0
  for (const m of form.matchAll(PLACEHOLDER)) {
    const role = m[1] as string
    if (!(role in ROLE_SOURCES)) throw new RulesInvalidError(where, `unknown role {${role}} in form ${JSON.stringify(form)}`)
    source += escapeRegex(form.slice(last, m.index))
    if (role === 'label') {
      source += '(?:' + LABEL_SOURCE + ')'
      for (const part of LABEL_GROUPS) groups.push(`label_${part}`)
    } else {
      source += '(' + ROLE_SOURCES[role as Role] + ')'
      groups.push(role as GroupRole)
    }
    roles.push(role as Role)
    last = (m.index ?? 0) + m[0].length
  }
  source += escapeRegex(form.slice(last)) + '$'
  const lazy = roles.filter((r) => LAZY_ROLES.has(r)).length
  return { form, maxText: lazy >= 3 ? FORM_TEXT_LAZY : FORM_TEXT_MAX, regex: new RegExp(source, 's'), roles, groups }
}

/** Loads and compiles every rule file in a directory (default: the package's parsers/messages). */
export function loadRules (dir = join(packageRoot(), 'parsers', 'messages')): RuleSet {
  const rules: RuleSet = new Map()
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()
  for (const file of files) {
    const path = join(dir, file)
    let doc: unknown
    try {
      doc = parseYaml(readFileSync(path, 'utf8'))
    } catch (err) {
      throw new RulesInvalidError(path, (err as Error).message)
    }
    const parsed = fileSchema.safeParse(doc)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new RulesInvalidError(path, `${issue?.path.join('.')}: ${issue?.message}`)
    }
    for (const [id, r] of Object.entries(parsed.data.rules)) {
      if (rules.has(id)) throw new RulesInvalidError(path, `message ID ${id} is also defined in ${rules.get(id)?.file}`)
      rules.set(id, {
        id,
        action: r.action,
        family: r.family ?? parsed.data.family,
        leaseType: r.lease_type,
        prefix128IsAddress: r.prefix128_is_address ?? false,
        forms: r.forms.map((f) => compileForm(f, `${path} ${id}`)),
        file: path
      })
    }
  }
  return rules
}

let defaultRules: RuleSet | undefined
export function builtinRules (): RuleSet {
  defaultRules ??= loadRules()
  return defaultRules
}
