import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { PatternUnknownError, RulesInvalidError } from '../errors.js'
import { packageRoot } from '../paths.js'

const patternsSchema = z.object({
  patterns: z.record(z.string(), z.object({
    description: z.string().describe('What this pattern is and where Kea uses it'),
    outputs: z.array(z.enum(['file', 'stdout', 'stderr', 'syslog'])).describe('Kea output types that default to it'),
    pattern: z.string().describe('The log4cplus pattern')
  }).strict())
}).strict()

export type BuiltinPatterns = z.infer<typeof patternsSchema>['patterns']

let cache: BuiltinPatterns | undefined

/** Kea's built-in patterns, by name (parsers/patterns.yaml). */
export function builtinPatterns (): BuiltinPatterns {
  if (cache !== undefined) return cache
  const path = join(packageRoot(), 'parsers', 'patterns.yaml')
  const parsed = patternsSchema.safeParse(parseYaml(readFileSync(path, 'utf8')))
  if (!parsed.success) throw new RulesInvalidError(path, parsed.error.message)
  cache = parsed.data.patterns
  return cache
}

export const DEFAULT_FILE_PATTERN_NAME = 'kea-file'
export const DEFAULT_SYSLOG_PATTERN_NAME = 'kea-syslog'

/**
 * A built-in name resolves to its pattern; text with a `%` is taken as a pattern. Text without
 * one is meant as a name: every usable pattern has `%m`, so a mistyped name (`kea-sylog`) taken
 * as a literal pattern would only store every line as `unmatched`.
 */
export function resolvePattern (nameOrPattern: string): string {
  const builtin = builtinPatterns()[nameOrPattern]
  if (builtin !== undefined) return builtin.pattern
  if (!nameOrPattern.includes('%')) throw new PatternUnknownError(JSON.stringify(nameOrPattern), Object.keys(builtinPatterns()).join(', '))
  return nameOrPattern
}

/** The pattern Kea (≥ 1.7.7) uses for an output when the config sets none. */
export function defaultPatternForOutput (output: string): string {
  const name = output === 'syslog' || output.startsWith('syslog:') ? DEFAULT_SYSLOG_PATTERN_NAME : DEFAULT_FILE_PATTERN_NAME
  return (builtinPatterns()[name] as BuiltinPatterns[string]).pattern
}
