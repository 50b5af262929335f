import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { configSchema, type KeatrailConfig } from '../config/config.js'
import { ConfigInvalidError, InputReadError, isCodedError, type CodedError } from '../errors.js'
import { compilePattern } from '../parse/pattern/compile.js'
import { resolvePattern } from '../parse/patterns.js'
import { isTimeZone } from './options.js'
import type { CliIo } from './parse.js'

export function registerConfigCheck (program: Command, io: CliIo): void {
  program.command('config')
    .description('Check keatrail configuration files')
    .command('check')
    .description('Validate a keatrail.yaml and print the effective config (defaults filled in) as YAML; every problem is one coded line on stderr')
    .argument('<file>', 'keatrail.yaml')
    .action((file: string) => {
      const problems = checkConfig(file)
      if (problems.problems.length > 0) {
        for (const p of problems.problems) io.stderr.write(`keatrail: ${p.code}: ${p.message}\n`)
        io.stderr.write(`${file}: ${problems.problems.length} problem(s)\n`)
        io.exitCode = 2
        return
      }
      io.stdout.write(`# ${file}: valid; the effective configuration, defaults filled in\n`)
      io.stdout.write(stringifyYaml(problems.config))
    })
}

export interface ConfigCheck {
  problems: CodedError[]
  /** The effective config, when there is no problem. */
  config?: KeatrailConfig
}

/**
 * Everything keatrail would refuse at start: the schema (all issues, not only the first), then
 * what the schema cannot see — each source's pattern (a known name, compiles, has %m) and time
 * zone — so that `config check` passing means `run` will not stop on the file.
 */
export function checkConfig (file: string): ConfigCheck {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return { problems: [new InputReadError(file, (err as Error).message)] }
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    return { problems: [new ConfigInvalidError(file, (err as Error).message.replace(/\s*\n[\s\S]*$/, ''))] }
  }
  const parsed = configSchema.safeParse(doc ?? {})
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((issue) => {
        const field = issue.path.map(String).join('.')
        const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : ''
        return new ConfigInvalidError(`${file}: ${field === '' ? '(top level)' : field}`, `${issue.message}${extra}`)
      })
    }
  }
  const problems: CodedError[] = []
  parsed.data.sources.forEach((source, i) => {
    const cfg = source as { pattern?: string, timeZone?: string }
    if (cfg.timeZone !== undefined && !isTimeZone(cfg.timeZone)) {
      problems.push(new ConfigInvalidError(`${file}: sources.${i}.timeZone (${source.name})`, `${JSON.stringify(cfg.timeZone)} is not an IANA time zone name (such as UTC or Europe/Berlin)`))
      return
    }
    if (cfg.pattern === undefined) return
    try {
      const pattern = resolvePattern(cfg.pattern)
      compilePattern(pattern, cfg.timeZone === undefined ? {} : { timeZone: cfg.timeZone })
    } catch (err) {
      if (!isCodedError(err)) throw err
      problems.push(new ConfigInvalidError(`${file}: sources.${i}.pattern (${source.name})`, `${err.code}: ${err.message}`))
    }
  })
  return problems.length > 0 ? { problems } : { problems, config: parsed.data }
}
