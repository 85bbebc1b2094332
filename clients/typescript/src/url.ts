// Broker URLs as the .NET producer takes them (src/Producer/Broker/BrokerAddress.cs):
// amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost][?options]
// Several hosts are the nodes of one cluster: the client connects to the first that answers. Options follow RabbitMQ's URI
// query parameters: cacertfile, certfile + keyfile, server_name_indication, verify=verify_peer|verify_none, heartbeat,
// connection_timeout. The password may come from the file named by LANEQUEUE_RABBITMQ_PASSWORD_FILE when the URL has none.

import { readFileSync } from 'node:fs';

export const URL_VARIABLE = 'LANEQUEUE_RABBITMQ_URL';
export const PASSWORD_FILE_VARIABLE = 'LANEQUEUE_RABBITMQ_PASSWORD_FILE';
export const DEFAULT_URL = 'amqp://guest:guest@localhost:5672/lanequeue';

export interface BrokerAddress {
  scheme: 'amqp' | 'amqps';
  hosts: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  vhost: string;
  caCertFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  verifyPeer: boolean;
  /** Seconds; absent: the broker's suggestion. */
  heartbeat?: number;
  /** Milliseconds to wait for each host's TCP (and TLS) connection. */
  connectionTimeout?: number;
}

const KNOWN_OPTIONS = new Set(['cacertfile', 'certfile', 'keyfile', 'server_name_indication', 'verify', 'heartbeat', 'connection_timeout']);

/** The URL from LANEQUEUE_RABBITMQ_URL, or the default `amqp://guest:guest@localhost:5672/lanequeue`. */
export function urlFromEnvironment(): string {
  const url = process.env[URL_VARIABLE];
  return url && url.trim().length > 0 ? url : DEFAULT_URL;
}

/** The URL without its password, for errors and logs. */
export function redact(url: string): string {
  const schemeEnd = url.indexOf('://');
  const start = schemeEnd >= 0 ? schemeEnd + 3 : 0;
  let end = url.slice(start).search(/[/?]/);
  end = end >= 0 ? start + end : url.length;
  const at = url.lastIndexOf('@', end - 1);
  if (at < start) return url;
  const colon = url.indexOf(':', start);
  return colon < 0 || colon > at ? url : url.slice(0, colon + 1) + '***' + url.slice(at);
}

/** Parses a broker URL; throws an Error that says what is wrong (never with the password in it). */
export function parseBrokerUrl(url: string): BrokerAddress {
  if (typeof url !== 'string' || url.trim().length === 0) throw new Error('the broker URL is empty');
  const schemeEnd = url.indexOf('://');
  const scheme = schemeEnd > 0 ? url.slice(0, schemeEnd).toLowerCase() : '';
  if (scheme !== 'amqp' && scheme !== 'amqps') throw new Error(`the broker URL must start with amqp:// or amqps:// (got '${redact(url)}')`);
  let rest = url.slice(schemeEnd + 3);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let path = '';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    path = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
  }
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const info = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = info.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? info.slice(0, colon) : info);
    password = colon >= 0 ? decodeURIComponent(info.slice(colon + 1)) : undefined;
  }
  const defaultPort = scheme === 'amqps' ? 5671 : 5672;
  const hosts: BrokerAddress['hosts'] = [];
  for (const raw of rest.split(',')) {
    const part = raw.trim();
    const host = parseHost(part, defaultPort);
    if (!host) throw new Error(`bad host '${part}' in the broker URL '${redact(url)}' (expected host[:port], several separated by commas)`);
    hosts.push(host);
  }
  const options = new Map<string, string>();
  for (const pair of query.split('&')) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf('=');
    options.set(decodeURIComponent(eq >= 0 ? pair.slice(0, eq) : pair).toLowerCase(), eq >= 0 ? decodeURIComponent(pair.slice(eq + 1)) : '');
  }
  for (const key of options.keys()) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new Error(`unknown option '${key}' in the broker URL (known: cacertfile, certfile, keyfile, server_name_indication, verify, heartbeat, connection_timeout)`);
    }
  }
  const verify = options.get('verify') ?? 'verify_peer';
  if (verify !== 'verify_peer' && verify !== 'verify_none') throw new Error(`verify must be verify_peer or verify_none, got '${verify}'`);
  if (options.has('certfile') !== options.has('keyfile')) throw new Error('certfile and keyfile go together (PEM client certificate and its key)');
  const passwordFile = process.env[PASSWORD_FILE_VARIABLE];
  if (password === undefined && passwordFile) {
    try {
      password = readFileSync(passwordFile, 'utf8').replace(/[\r\n]+$/, '');
    } catch (error) {
      throw new Error(`cannot read the password file named by ${PASSWORD_FILE_VARIABLE}: ${(error as Error).message}`);
    }
  }
  const vhost = path.replace(/^\/+|\/+$/g, '');
  const address: BrokerAddress = {
    scheme,
    hosts,
    vhost: vhost.length > 0 ? decodeURIComponent(vhost) : '/',
    verifyPeer: verify === 'verify_peer',
  };
  if (username) address.username = username;
  if (password !== undefined) address.password = password;
  for (const [option, key] of [['cacertfile', 'caCertFile'], ['certfile', 'certFile'], ['keyfile', 'keyFile'], ['server_name_indication', 'serverName']] as const) {
    const value = options.get(option);
    if (value !== undefined) address[key] = value;
  }
  for (const [option, key] of [['heartbeat', 'heartbeat'], ['connection_timeout', 'connectionTimeout']] as const) {
    const value = options.get(option);
    if (value === undefined) continue;
    const number = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(number)) throw new Error(`${option} must be a whole number, got '${value}'`);
    address[key] = number;
  }
  return address;
}

function parseHost(text: string, defaultPort: number): { host: string; port: number } | undefined {
  if (text.length === 0) return { host: 'localhost', port: defaultPort };
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 1).replace(/^:/, '');
  } else {
    const colon = text.lastIndexOf(':');
    host = colon >= 0 ? text.slice(0, colon) : text;
    portText = colon >= 0 ? text.slice(colon + 1) : '';
  }
  let port = defaultPort;
  if (portText.length > 0) {
    if (!/^\d+$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  if (host.length === 0 || host.includes('@')) return undefined;
  return { host, port };
}
