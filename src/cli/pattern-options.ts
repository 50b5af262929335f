import { Option, type Command } from 'commander'
import { UsageError } from '../errors.js'
import { patternFromKeaConfig } from '../kea/kea-config.js'
import { DEFAULT_FILE_PATTERN_NAME, resolvePattern } from '../parse/patterns.js'
import { systemTimeZone } from '../parse/time/zone.js'
import { parseTimeZone } from './options.js'

export interface PatternOptions {
  pattern?: string
  keaConfig?: string
  output?: string
  tz?: string
  host?: string
}

/** The options every command that reads Kea logs takes (parse, import, …). */
export function addPatternOptions (cmd: Command): Command {
  return cmd
    .option('--pattern <pattern>', `log4cplus pattern, or a built-in name (kea-file, kea-syslog, kea-file-pre-1.7.7, kea-syslog-pre-1.7.7, debian-systemd); default ${DEFAULT_FILE_PATTERN_NAME}`)
    .option('--kea-config <file>', 'take the pattern from this Kea configuration (comments allowed)')
    .option('--output <name>', 'with --kea-config: which output_options entry (its output value or file name)')
    .addOption(new Option('--tz <zone>', 'IANA time zone of local-time (%D) headers; default: this host\'s zone').argParser(parseTimeZone))
    .option('--host <name>', 'host.name for the events: the Kea server the logs come from, the scope of its lease history (import: default this machine\'s name, as a file source of keatrail run)')
}

export interface ResolvedPattern { pattern: string, timeZone: string, host: string | undefined }

export function resolvePatternOptions (o: PatternOptions): ResolvedPattern {
  if (o.pattern !== undefined && o.keaConfig !== undefined) throw new UsageError('--pattern and --kea-config exclude each other')
  if (o.output !== undefined && o.keaConfig === undefined) throw new UsageError('--output needs --kea-config')
  let pattern: string
  if (o.keaConfig !== undefined) pattern = patternFromKeaConfig(o.keaConfig, o.output).pattern
  else pattern = resolvePattern(o.pattern ?? DEFAULT_FILE_PATTERN_NAME)
  return { pattern, timeZone: o.tz ?? systemTimeZone(), host: o.host }
}
