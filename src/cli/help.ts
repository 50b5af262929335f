import type { Command } from 'commander'

/**
 * One example per command, shown at the end of its --help (and all of them under
 * `keatrail --help`). Kept in one table rather than beside each command so that every command,
 * whoever registers it, gets one, and a test can check that none is missing.
 */
export const EXAMPLES: Readonly<Record<string, string>> = {
  parse: 'keatrail parse --tz Europe/Berlin --stats -q /var/log/kea/kea-dhcp4.log',
  import: 'keatrail import --data-dir /var/lib/keatrail /var/log/kea/kea-dhcp4.log*',
  'deadletter list': 'keatrail deadletter list --data-dir /var/lib/keatrail --limit 20',
  'deadletter retry': 'keatrail deadletter retry --store elasticsearch --es-url https://es.example.net:9200',
  run: 'keatrail run --config /etc/keatrail/keatrail.yaml',
  discover: 'keatrail discover /etc/kea/kea-dhcp4.conf /etc/kea/kea-dhcp6.conf --out keatrail.yaml',
  'lease at': 'keatrail lease at 192.0.2.10 2026-11-24T04:16:00Z   (or: now, now-2h)',
  'lease history': 'keatrail lease history --mac 02:00:00:00:00:0a --from now-7d',
  'lease import-csv': 'keatrail lease import-csv /var/lib/kea/kea-leases4.csv --scope kea-a',
  'lease attribute': 'keatrail lease attribute --tz Europe/Berlin complaints.csv > answered.csv   (rows: address,time[,…])',
  'kea status': 'keatrail kea status --url http://127.0.0.1:8000',
  setup: 'keatrail setup --es https://es.example.net:9200 --kibana https://kibana.example.net:5601',
  serve: 'keatrail serve --data-dir /var/lib/keatrail --port 8080',
  'api-key': 'keatrail api-key grafana --role read',
  'config check': 'keatrail config check /etc/keatrail/keatrail.yaml'
}

/** Every runnable command under `cmd`, by its path ("lease at"). */
export function leafCommands (cmd: Command, prefix = ''): Array<[string, Command]> {
  const out: Array<[string, Command]> = []
  for (const sub of cmd.commands) {
    const path = `${prefix}${sub.name()}`
    if (sub.commands.length > 0) out.push(...leafCommands(sub, `${path} `))
    else out.push([path, sub])
  }
  return out
}

/** Adds "Example:" to each command's help and "Examples:" to the program's. */
export function addExamples (program: Command): void {
  const all: string[] = []
  for (const [path, cmd] of leafCommands(program)) {
    const example = EXAMPLES[path]
    if (example === undefined) continue
    cmd.addHelpText('after', `\nExample:\n  $ ${example}\n`)
    all.push(`  $ ${example}`)
  }
  program.addHelpText('after', `\nExamples:\n${all.join('\n')}\n\nErrors are one line, "keatrail: KEATRAIL_ERR_…: …", exit code 2; 1 means done, but not all of it.\n`)
}
