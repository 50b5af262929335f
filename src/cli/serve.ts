import { randomBytes } from 'node:crypto'
import { Option, type Command } from 'commander'
import { apiKeyHash } from '../api/app.js'
import { checkExposure, serveApi } from '../api/serve.js'
import { asLog, createLogger } from '../app/logger.js'
import { apiListenError } from '../app/service.js'
import { openStore, type OpenedStore } from '../app/store.js'
import { parsePort } from './options.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, commandConfig, type StoreOptions } from './store-options.js'

interface ServeOptions extends StoreOptions {
  host?: string
  port?: number
  insecure?: boolean
}

export function registerServe (program: Command, io: CliIo): void {
  addStoreOptions(program.command('serve'))
    .description('Serve the REST API and web UI on an existing store, without collecting (the store, dataDir and api: of --config, or the options)')
    .option('--host <addr>', 'listen address (default 127.0.0.1)')
    .addOption(new Option('--port <n>', 'TCP port (default 8080)').argParser(parsePort))
    .option('--insecure', 'allow listening beyond loopback without API keys')
    .action(async (o: ServeOptions) => {
      const cfg = commandConfig(o, {
        api: {
          ...(o.host === undefined ? {} : { host: o.host }),
          ...(o.port === undefined ? {} : { port: o.port }),
          ...(o.insecure === true ? { insecure: true } : {})
        }
      })
      checkExposure(cfg.api)
      const logger = createLogger(cfg.log, io.stderr)
      const log = asLog(logger)
      // A reader: a store that is not there is an error naming where it was looked for.
      const opened = await openStore(cfg, { mode: 'read', log }) as OpenedStore
      let served: Awaited<ReturnType<typeof serveApi>>
      try {
        served = await serveApi(opened.store, cfg.api, cfg.dataDir, { deadLetters: () => opened.deadLetters?.count() ?? 0 }, undefined, opened.deadLetters, logger)
      } catch (err) {
        await opened.close()
        throw apiListenError(cfg, err)
      }
      log.info('API and web UI listening.', { url: served.url, store: opened.store.kind })
      await new Promise<void>((resolve) => {
        const stop = (): void => { resolve() }
        process.once('SIGTERM', stop)
        process.once('SIGINT', stop)
      })
      await served.app.close()
      await opened.close()
    })

  program.command('api-key')
    .description('Make a new API key: prints the key (give it to the client) and the api.keys entry (put it in keatrail.yaml)')
    .argument('<name>', 'who will use it')
    .addOption(new Option('--role <role>', 'what the key may do').choices(['read', 'admin']).default('read'))
    .action((name: string, o: { role: 'read' | 'admin' }) => {
      const key = `kt_${randomBytes(24).toString('base64url')}`
      io.stdout.write(`key:   ${key}\nentry: - { name: ${JSON.stringify(name)}, role: ${o.role}, sha256: ${apiKeyHash(key)} }\n`)
    })
}
