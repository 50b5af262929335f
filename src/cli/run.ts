import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { resolveConfig } from '../app/config.js'
import { createLogger } from '../app/logger.js'
import { runService } from '../app/service.js'
import { parseConfig, type KeatrailConfig } from '../config/config.js'
import { packageRoot } from '../paths.js'
import type { CliIo } from './parse.js'
import { addConfigOption } from './store-options.js'

export function registerRun (program: Command, io: CliIo): void {
  addConfigOption(program.command('run'))
    .description('Run keatrail: follow Kea\'s logs and store the events (default: SQLite in ./data)')
    .option('--data-dir <dir>', 'overrides dataDir of the config')
    .option('--no-api', 'do not serve the REST API and web UI')
    .option('--insecure', 'allow the API beyond loopback without API keys')
    .action(async (o: { config?: string, dataDir?: string, api?: boolean, insecure?: boolean, logLevel?: string }) => {
      // Without --config: Kea's log directory or the bundled samples (defaultConfig).
      const cfg = resolveConfig(o.config, {
        ...(o.dataDir === undefined ? {} : { dataDir: o.dataDir }),
        ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel }),
        api: { ...(o.api === false ? { enabled: false } : {}), ...(o.insecure === true ? { insecure: true } : {}) }
      }, defaultConfig)
      io.exitCode = await runService(cfg, createLogger(cfg.log, io.stderr))
    })
}

/** No config: Kea's default log directory if it has logs, else the bundled samples (so `run` shows something real). */
export function defaultConfig (): KeatrailConfig {
  const kea = '/var/log/kea'
  const live = existsSync(kea) && readdirSync(kea).some((f) => /\.log/.test(f))
  const include = live
    ? [join(kea, 'kea-dhcp4*.log*'), join(kea, 'kea-dhcp6*.log*')]
    : [join(packageRoot(), 'test', 'fixtures', 'kea', 'kea-2.2.0-dhcp*-INFO-full.log')]
  return parseConfig({ sources: [{ type: 'file', name: live ? 'kea' : 'samples', include, ...(live ? {} : { timeZone: 'UTC' }) }] })
}
