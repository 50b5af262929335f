import { randomBytes } from 'node:crypto'
import { Option, type Command } from 'commander'
import { apiKeyHash } from '../api/app.js'
import { apiConfigSchema } from '../api/config.js'
import { checkExposure, serveApi } from '../api/serve.js'
import { loadConfig } from '../config/config.js'
import { parsePort } from './options.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, openStore, type StoreOptions } from './store-options.js'

interface ServeOptions extends StoreOptions {
  config?: string
  host?: string
  port?: number
  insecure?: boolean
}

export function registerServe (program: Command, io: CliIo): void {
  addStoreOptions(program.command('serve'))
    .description('Serve the REST API and web UI on an existing store, without collecting (api: section of --config, or the options)')
    .option('--config <file>', 'keatrail.yaml: its api: section and dataDir')
    .option('--host <addr>', 'listen address (default 127.0.0.1)')
    .addOption(new Option('--port <n>', 'TCP port (default 8080)').argParser(parsePort))
    .option('--insecure', 'allow listening beyond loopback without API keys')
    .action(async (o: ServeOptions, cmd: Command) => {
      const file = o.config === undefined ? undefined : loadConfig(o.config)
      const api = apiConfigSchema.parse({
        ...(file?.api ?? {}),
        ...(o.host === undefined ? {} : { host: o.host }),
        ...(o.port === undefined ? {} : { port: o.port }),
        ...(o.insecure === true ? { insecure: true } : {})
      })
      checkExposure(api)
      // --data-dir given on the command line wins; its default does not override the config's.
      const dataDir = cmd.getOptionValueSource('dataDir') === 'cli' ? o.dataDir as string : file?.dataDir ?? o.dataDir ?? './data'
      const opened = await openStore({ ...o, dataDir })
      const { app, url } = await serveApi(opened.store, api, dataDir, { deadLetters: () => opened.deadLetters.count() }, undefined, opened.deadLetters)
      io.stderr.write(`keatrail API and web UI on ${url} (store: ${opened.store.kind})\n`)
      await new Promise<void>((resolve) => {
        const stop = (): void => { resolve() }
        process.once('SIGTERM', stop)
        process.once('SIGINT', stop)
      })
      await app.close()
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
