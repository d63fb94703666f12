// Type declarations for the pagekite package (the idiomatic layer in
// index.js).  The raw binding's declarations are generated from the spec
// into binding.d.ts.

import { EventEmitter } from 'events';
import type { RawBinding, PageKiteHandle, PagekiteEventObject } from './binding';

export type { RawBinding, PageKiteHandle };

/** Status names, as carried by 'status' events and the `status` getter. */
export type StatusName =
  | 'STARTUP'
  | 'CONNECTING'
  | 'UPDATING_DNS'
  | 'FLYING'
  | 'PROBLEMS'
  | 'REJECTED'
  | 'NO_NETWORK';

/** States of one kite (Connector.kiteStatus()). */
export type KiteStatusName = 'WAITING' | 'FLYING' | 'REJECTED' | 'DUPLICATE';

/** One kite of a Connector, as Connector.kites() reports it. */
export interface KiteState {
  /** The protocol as the kite is looked up: 'http', or 'http-8080' with a public port. */
  proto: string;
  name: string;
  status: KiteStatusName;
  /** Why a relay refused it ('signature', 'unknown', ...), or ''. */
  reason: string;
}

export type CounterName =
  | 'KITES_LIVE'
  | 'TUNNELS'
  | 'STREAMS'
  | 'BYTES_IN'
  | 'BYTES_OUT'
  | 'ERRORS'
  | 'STREAMS_TOTAL'
  | 'REJECTED';

/** Every counter at once; keys are the counter names in camelCase. */
export interface Counters {
  kitesLive: number;
  tunnels: number;
  streams: number;
  bytesIn: number;
  bytesOut: number;
  errors: number;
  streamsTotal: number;
  rejected: number;
}

export type ManagerState = 'configuring' | 'running' | 'stopping' | 'stopped';

/** Options shared by Connector and Relay (all optional). */
export interface ManagerOptions {
  /** Short application name, reported in instrumentation. */
  appId?: string;
  /** Most kite names the manager will handle. */
  maxKites?: number;
  /** Most front-end relays (Connector) or listeners (Relay). */
  maxFrontends?: number;
  /** Most connections in flight at once. */
  maxConns?: number;
  /** Flags.* bits (Connector default: WITH_DEFAULTS, i.e. TLS to relays, verified). */
  flags?: number;
  /** Preset log level (-1 quiet .. 2 everything) or a LogMask.* mask. */
  verbosity?: number;
}

export interface ConnectorOptions extends ManagerOptions {
  /** Dynamic DNS update URL (a format string), or null for none. */
  dyndnsUrl?: string | null;
}

export interface RelayOptions extends ManagerOptions {
  /** Alias of maxFrontends for a relay. */
  maxListeners?: number;
}

/** addKite()'s first spelling of the origin's port and host: deprecated. */
export interface KiteWithDeprecatedNames extends Omit<Kite, 'originPort' | 'originHost'> {
  /** @deprecated use originPort */
  port: number;
  /** @deprecated use originHost */
  host?: string;
}

export interface Kite {
  /** http (default), https, raw or websocket. */
  proto?: string;
  /** Public kite name, e.g. "demo.example.com". */
  name: string;
  /** Shared secret proving the right to fly this kite. */
  secret: string;
  /** Port of the origin server (Python: origin_port). */
  originPort: number;
  /** Host of the origin server; default "localhost" (Python: origin_host). */
  originHost?: string;
  /** Public port on the relay; 0 (default) for the protocol's default. */
  publicPort?: number;
}

export interface LogMeta {
  /** The line's event sequence number (pagekite_next_events). */
  seq: number;
  /** Unix time (seconds) when the line was logged. */
  time: number;
  /** The same in milliseconds. */
  timeMs: number;
  /** The line's PK_LOG_* bits. */
  mask: number;
}

/** One pagekite_event, as the 'event', 'kite', 'tunnel', 'streams' and 'lost' events carry it. */
export interface PageKiteEvent {
  kind: 'status' | 'log' | 'kite' | 'tunnel' | 'streams' | 'lost';
  /** 1, 2, 3, ... per manager, without gaps. */
  seq: number;
  /** Milliseconds since 1970-01-01 UTC. */
  timeMs: number;
  /** The kind's number: a status, log bits, kite status, 1/0 up/down, a count. */
  code: number;
  proto: string;
  name: string;
  text: string;
}

export interface ManagerEvents {
  status: [name: StatusName, code: number];
  log: [text: string, meta: LogMeta];
  event: [event: PageKiteEvent];
  kite: [event: PageKiteEvent & { status: KiteStatusName | string }];
  tunnel: [event: PageKiteEvent & { up: boolean }];
  streams: [event: PageKiteEvent];
  lost: [event: PageKiteEvent];
  close: [];
}

export type PageKiteErrorCode = 'PK_EINVAL' | 'PK_ESTATE' | 'PK_ENOTFOUND' | 'PK_EEXIST' |
  'PK_ENOMEM' | 'PK_ENETWORK' | 'PK_ETLS' | 'PK_EREJECTED' | 'PK_ELIMIT' | 'PK_EIO' |
  'PK_EUNSUPPORTED';

/** An error reported by libpagekite; `reason` is pagekite_last_error(). */
export class PageKiteError extends Error {
  readonly name: 'PageKiteError';
  /**
   * The PK_E* code's name ('PK_EINVAL', 'PK_ESTATE', 'PK_ENOTFOUND', 'PK_EEXIST',
   * 'PK_ENOMEM', 'PK_ENETWORK', 'PK_ETLS', 'PK_EREJECTED', 'PK_ELIMIT', 'PK_EIO',
   * 'PK_EUNSUPPORTED'), or 'ERR_PAGEKITE' for a code this module does not know.
   */
  readonly code: PageKiteErrorCode | 'ERR_PAGEKITE';
  /** The PK_E* number (pagekite_last_error_code()), undefined with 'ERR_PAGEKITE'. */
  readonly errno?: number;
  /** The method that failed, e.g. "start", "addKite". */
  readonly call: string | null;
  /** The library's reason, without the call prefix. */
  readonly reason: string;
  /** waitFor() gave up because a relay rejected kites: 'REJECTED'. */
  readonly status?: 'REJECTED';
  /** With status 'REJECTED': the kites a relay refused, with its reasons. */
  readonly kites?: KiteState[];
  constructor(message: string, call?: string);
}

/** What Connector and Relay share. */
declare class Manager extends EventEmitter {
  /** 'configuring', 'running', 'stopping' or 'stopped'. */
  readonly state: ManagerState;
  /** True between a successful start() and stop(). */
  readonly running: boolean;
  /** The current status name. */
  readonly status: StatusName;
  /** The current status as a Status.* number. */
  readonly statusCode: number;
  /** The recent in-memory log, oldest first ("<seq> t=<time> <text>" lines). */
  readonly log: string[];

  /** Start the manager's thread; 'status' and 'log' events follow. */
  start(): Promise<this>;
  /** Stop the thread, close every connection and free the manager (off the JS thread). */
  stop(): Promise<void>;
  /** Let the running manager keep the process alive (the default). */
  ref(): this;
  /** Let the process exit even though the manager runs. */
  unref(): this;
  /**
   * Resolve once a 'status' event reports one of `statuses`; reject after
   * timeoutMs, on stop, and at once on REJECTED (unless waited for), with a
   * PageKiteError whose `status` is 'REJECTED' and `kites` says why.
   */
  waitFor(statuses: StatusName | StatusName[], timeoutMs?: number): Promise<StatusName>;

  /**
   * The kept events after `after` (0: from the oldest), at most `max`, oldest
   * first, without waiting; the same objects as the 'event' events.
   */
  nextEvents(after?: number, max?: number): PageKiteEvent[];
  counter(which: CounterName | number): number;
  counters(): Counters;
  /** Serve GET /metrics and GET /status.json on host:port (null: 127.0.0.1; port 0: off). Before start(). */
  setAdminListener(host: string | null, port: number): this;
  /** The metrics in the Prometheus text format 0.0.4. */
  metrics(): string;
  /** The status as JSON text (JSON.parse it). */
  statusJson(): string;

  setLogMask(mask: number): this;
  setHousekeepingInterval(bounds: { min?: number; max?: number }): { min?: number; max?: number };
  enableHttpForwardingHeaders(enable?: boolean): this;
  enableFakePing(enable?: boolean): this;
  /** Before start() only. */
  enableWatchdog(enable?: boolean): this;
  enableTickTimer(enable?: boolean): this;
  tick(): this;
  setConnEvictionIdle(seconds: number): this;
  setOpensslCiphers(ciphers: string): this;
  setBailOnErrors(errors: number): this;
  /** Experimental, before start(); fails in a library built without Lua. */
  enableLuaPlugins(opts?: { enableDefaults?: boolean; settings?: string[] | null }): this;
  /** Experimental, before start(); fails in a library built without Lua. */
  loadLuaPlugin(path: string): this;

  on<K extends keyof ManagerEvents>(event: K, listener: (...args: ManagerEvents[K]) => void): this;
  once<K extends keyof ManagerEvents>(event: K, listener: (...args: ManagerEvents[K]) => void): this;
  off<K extends keyof ManagerEvents>(event: K, listener: (...args: ManagerEvents[K]) => void): this;
  addListener<K extends keyof ManagerEvents>(event: K, listener: (...args: ManagerEvents[K]) => void): this;
  emit<K extends keyof ManagerEvents>(event: K, ...args: ManagerEvents[K]): boolean;

  [Symbol.asyncDispose](): Promise<void>;
}

export type { Manager };

/** A connector: publishes local servers (kites) through front-end relays. */
export class Connector extends Manager {
  constructor(options?: ConnectorOptions);
  /** Before start() only. */
  addKite(kite: Kite | KiteWithDeprecatedNames): this;
  /** Stop serving a kite (as added), at any time. */
  removeKite(proto: string, name: string, publicPort?: number): this;
  addKiteAccess(name: string, rule: string, publicPort?: number): this;
  /** Use the relay(s) `host` resolves to; returns the number of addresses. Before start(). */
  addFrontend(host: string, port: number, opts?: { updateFromDns?: boolean }): number;
  /** Forget a relay (as added), at any time: its tunnels close. */
  removeFrontend(host: string, port: number): this;
  /** Use the pagekite.net relay pool. Before start(). */
  addServiceFrontends(flags?: number): number;
  /** Use a white-label domain's relays. Before start(). */
  addWhitelabelFrontends(whitelabelTld: string, flags?: number): number;
  /** Verify relay certificates (against caFile or the system store), or not. Before start(). */
  setTlsVerify(verify?: boolean, caFile?: string | null): this;
  /** Also accept a relay certificate issued for name ('' clears the list). Before start(). */
  addFrontendCertname(name: string): this;
  /** Relays and DDNS through http://, socks5:// or socks5h:// (null or '': none). Before start(). */
  setProxy(url: string | null): this;
  /** Frame url in the 503 page sent when an origin is down (null or '': plain page). */
  setRejectionUrl(url: string | null): this;
  /** PROXY protocol header (1 text, 2 binary, 0 none) before each stream to the kite's origin. */
  setKiteProxyProtocol(proto: string, name: string, version: 0 | 1 | 2): this;
  /** One kite's state; throws PageKiteError for a kite never added. */
  kiteStatus(proto: string, name: string): KiteStatusName;
  /** Why a relay refused a kite ('signature', 'unknown', ...), or ''. */
  kiteReason(proto: string, name: string): string;
  /** Every kite added with addKite(), with its state and reason. */
  kites(): KiteState[];
  wantSpareFrontends(spares: number): this;
}

/** A front-end relay (PK_AS_FRONTEND_RELAY). */
export class Relay extends Manager {
  constructor(options?: RelayOptions);
  /** Listen on host:port (host null: all addresses). Before start(). */
  addListener(host: string | null, port: number): this;
  /** With a listener function: EventEmitter's addListener. */
  addListener<K extends keyof ManagerEvents>(event: K, listener: (...args: ManagerEvents[K]) => void): this;
  /** Accept kites matching pattern for protos ("http,https" or an array), signed with secret. */
  addDomain(protos: string | string[], pattern: string, secret: string): this;
  /** Stop accepting a domain (as added), at any time: its live kites are dropped. */
  removeDomain(protos: string | string[], pattern: string): this;
  /** Share a flying kite between every correctly signed tunnel (default false: duplicates refused). Before start(). */
  setDuplicates(allow?: boolean): this;
  /** PEM certificate chain and key: the catch-all for TLS the relay terminates. Before start(). */
  setTls(certFile: string, keyFile: string): this;
  /**
   * Terminate TLS for name ('host' or '*.domain') with its own certificate when no
   * https kite takes it (keyFile null: the key is in certFile). Before start().
   */
  addTlsEndpoint(name: string, certFile: string, keyFile?: string | null): this;
  /** Forget the certificate of name (as added), at any time. */
  removeTlsEndpoint(name: string): this;
  /** The name assumed for TLS clients without SNI (null or '': none). Before start(). */
  setTlsDefault(name: string | null): this;
  /** Ports raw kites may claim: '22,2222', 'virtual' or [22, 'virtual'] (null or '': none). Before start(). */
  setRawPorts(ports: string | Array<number | string> | null): this;
  /** Visitors on listening port are routed as if on aliasOf, whose kites are accepted. Before start(). */
  addPortAlias(port: number, aliasOf: number): this;
  /** Connections from this address or network must start with a PROXY v1/v2 header. Before start(). */
  addProxySource(cidr: string): this;
  /** A message of the day for connectors, at most 1024 bytes (null or '': none). Before start(). */
  setMotd(motd: string | null): this;
  addClientAcl(rule: string): this;
  addTunnelAcl(rule: string): this;
  setRequireTls(require?: boolean): this;
  /** DNS-based kite authentication: 'SUFFIX' or 'KITE-DOMAIN:SUFFIX' (--authdomain). Before start(). */
  addAuthdomain(spec: string): this;
  /** Refuse kites when the auth domain cannot be asked (--authfail_closed). Before start(). */
  setAuthfailClosed(closed?: boolean): this;
  addRatelimitIps(limit: string): this;
}

export const Status: Readonly<Record<StatusName, number>>;
export const Counter: Readonly<Record<CounterName, number>>;
export const KiteStatus: Readonly<Record<KiteStatusName, number>>;
/** Kinds of events by name (PK_EVENT_*): STATUS, LOG, KITE, TUNNEL, STREAMS, LOST, EXIT. */
export const EventKind: Readonly<Record<'STATUS' | 'LOG' | 'KITE' | 'TUNNEL' | 'STREAMS' | 'LOST' | 'EXIT', number>>;
export const TlsVerify: Readonly<{ NONE: number; PEER: number }>;
export const Flags: Readonly<{
  WITH_DEFAULTS: number;
  WITHOUT_DEFAULTS: number;
  WITH_SSL: number;
  WITH_IPV4: number;
  WITH_IPV6: number;
  WITH_SERVICE_FRONTENDS: number;
  WITHOUT_SERVICE_FRONTENDS: number;
  WITH_DYNAMIC_FE_LIST: number;
  WITH_FRONTEND_SNI: number;
  AS_FRONTEND_RELAY: number;
}>;
export const LogMask: Readonly<{
  TUNNEL_DATA: number;
  TUNNEL_HEADERS: number;
  TUNNEL_CONNS: number;
  LUA_INFO: number;
  BE_DATA: number;
  BE_HEADERS: number;
  BE_CONNS: number;
  LUA_DEBUG: number;
  MANAGER_ERROR: number;
  MANAGER_INFO: number;
  MANAGER_DEBUG: number;
  TRACE: number;
  ERROR: number;
  ERRORS: number;
  MANAGER: number;
  CONNS: number;
  NORMAL: number;
  DEBUG: number;
  ALL: number;
}>;

/** PK_VERSION of the embedded library. */
export const VERSION: string;
/** PK_VERSION_NUMBER of the header the addon was compiled with. */
export const VERSION_NUMBER: number;
/** pagekite_version_number() of the embedded library. */
export const libraryVersionNumber: number;
/** The name of a status code ('FLYING' for 40, 'UNKNOWN' otherwise): pagekite_status_name(). */
export function statusName(code: number): StatusName | 'UNKNOWN';

/** The raw API: one function per C call, every constant, plus the event bridge. */
export const binding: RawBinding & {
  /** Start the master thread and the event bridge; returns pagekite_thread_start()'s result. */
  start(
    handle: PageKiteHandle,
    callback: (event: PagekiteEventObject) => void,
  ): number;
  /** Stop the master thread and the event bridge and free the manager, off the JS thread. */
  stop(handle: PageKiteHandle): Promise<void>;
  ref(handle: PageKiteHandle): void;
  unref(handle: PageKiteHandle): void;
};
