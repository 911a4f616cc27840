/**
 * Relay mode's configuration section: where the management server is (APPNET_MANAGEMENT_DOMAIN_NAME and _PORT, else
 * APPMESH_XDS_ENDPOINT, else the region's endpoint), the CA bundle that verifies it, the signing region and the TLS
 * curve. readConfig (agent/config) parses the variables by its table, hands them here and lists the problems this
 * section finds with the rest, in the one `NAME="value": rule` shape.
 */

export interface RelaySettings {
  readonly listenerPath: string;
  readonly domain: string;
  readonly port: number;
  readonly caFile: string;
  readonly signingName: string;
  readonly region: string;
  readonly streamIdleTimeoutMs: number;
  readonly bufferLimitBytes: number;
  readonly tlsCurve: 'P-256' | 'P-384';
}

/** The relay section's variables, parsed (undefined: unset; rows with a default always have a value). */
export interface RelayVariables {
  /** AWS_REGION, parsed, and as given. */
  readonly region: string | null;
  readonly regionAsGiven: string | undefined;
  readonly xdsEndpoint: string | undefined;
  readonly domain: string | undefined;
  readonly port: number;
  /** APPNET_MANAGEMENT_PORT was set: it wins over a port in APPMESH_XDS_ENDPOINT. */
  readonly portSet: boolean;
  readonly listenerPath: string;
  readonly caFile: string | undefined;
  readonly signingName: string;
  readonly streamIdleTimeoutMs: number;
  readonly bufferLimitBytes: number;
}

/** Records one problem as `NAME="value": rule`. */
export type ProblemSink = (name: string, value: string | undefined, rule: string) => void;

/**
 * System CA bundles, in the order they are tried when APPNET_RELAY_CA_FILE is unset: Amazon Linux's path first (the
 * reference's fixed path, and where ECS mounts the host's /etc/pki), then Debian and Ubuntu, RHEL and Fedora,
 * openSUSE, Alpine.
 */
export const CA_BUNDLES = [
  '/etc/pki/tls/cert.pem',
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
] as const;

/** The relay settings, or null when a problem leaves none (the problems say why). */
export function readRelaySection(v: RelayVariables, readFile: (path: string) => string, problem: ProblemSink): RelaySettings | null {
  if (v.region === null) problem('AWS_REGION', v.regionAsGiven, 'must be set in relay mode: it signs requests and names the default endpoint');
  let domain = v.domain;
  let port = v.port;
  if (domain === undefined && v.xdsEndpoint !== undefined) {
    const parsed = parseEndpointUrl(v.xdsEndpoint);
    if (parsed === null) {
      problem('APPMESH_XDS_ENDPOINT', v.xdsEndpoint, 'must be a URL such as https://ecs-sc.us-west-2.api.aws or host[:port] in relay mode');
    } else {
      domain = parsed.host;
      if (parsed.port !== null && !v.portSet) port = parsed.port;
    }
  }
  if (domain === undefined && v.region !== null) {
    domain = `ecs-sc.${v.region}.${v.region.startsWith('cn-') ? 'api.amazonwebservices.com.cn' : 'api.aws'}`;
  }
  if (v.region === null || domain === undefined) return null;
  return {
    listenerPath: v.listenerPath,
    domain,
    port,
    caFile: relayCaFile(v.caFile, readFile, problem),
    signingName: v.signingName,
    region: v.region,
    streamIdleTimeoutMs: v.streamIdleTimeoutMs,
    bufferLimitBytes: v.bufferLimitBytes,
    // Isolated partitions require P-384 (reference commit 4b21099).
    tlsCurve: /^(us-isof-|eu-isoe-)/.test(v.region) ? 'P-384' : 'P-256',
  };
}

/**
 * APPNET_RELAY_CA_FILE: a configured file must be a readable PEM bundle; unset, the first system bundle that is
 * one (Amazon Linux's /etc/pki/tls/cert.pem first). Without a CA bundle Envoy would reject the relay bootstrap
 * with `Invalid path`, naming no variable.
 */
function relayCaFile(configured: string | undefined, readFile: (path: string) => string, problem: ProblemSink): string {
  const check = (path: string): string | null => {
    let content: string;
    try {
      content = readFile(path);
    } catch (err) {
      return `must name a readable CA bundle (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    return content.includes('-----BEGIN CERTIFICATE-----') ? null : 'must name a CA bundle: PEM certificates (-----BEGIN CERTIFICATE-----)';
  };
  if (configured !== undefined) {
    const rule = check(configured);
    if (rule !== null) problem('APPNET_RELAY_CA_FILE', configured, rule);
    return configured;
  }
  const found = CA_BUNDLES.find((path) => check(path) === null);
  if (found === undefined) {
    problem('APPNET_RELAY_CA_FILE', undefined, `must be set in relay mode on this system: none of ${CA_BUNDLES.join(', ')} is a readable CA bundle`);
    return CA_BUNDLES[0];
  }
  return found;
}

function parseEndpointUrl(raw: string): { host: string; port: number | null } | null {
  const withScheme = /^[a-z]+:\/\//.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return null;
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) return null;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? null : Number(url.port) };
}
