/**
 * renderBootstrap(config, platform): the Envoy bootstrap as an object, plus any side files it references (X-Ray
 * sampling rules). Pure: no I/O, no clock, no env. `platform` carries what the edge collected (interfaces, kernel,
 * task metadata) so that the same inputs always give the same bootstrap.
 *
 * Field names are Envoy's proto names in snake_case. Values follow the reference agent's bootstrap (section 3 of
 * reference-agent-behaviour.md) except where noted.
 */
import { type Config, configurationError, parseMeshResource } from '../config/index.ts';
import type { Platform } from '../system/index.ts';
import { mergeCustomFiles } from './merge.ts';
import { renderRelay } from '../../relay/index.ts';
import { adminAddressObject, durationString } from '../envoy/index.ts';

export interface SideFile {
  readonly path: string;
  readonly content: string;
}

export interface RenderedBootstrap {
  readonly bootstrap: Record<string, unknown>;
  readonly files: readonly SideFile[];
}

/** Names of the files Envoy watches in Cloud Map mode (filesystem xDS), inside the runtime directory. */
export const cloudMapXdsFiles = { lds: 'lds.yaml', cds: 'cds.yaml' } as const;

const SC_TAG_NAMES = ['ServiceName', 'ClusterName', 'Direction'] as const;

/** Service Connect stats tags: they turn `appmesh.<Tag>.<value>....<Metric>` stat names into labelled metrics. */
export function serviceConnectStatsTags(): Array<{ tag_name: string; regex: string }> {
  const tags: Array<{ tag_name: string; regex: string }> = SC_TAG_NAMES.map((name) => ({
    tag_name: name,
    regex: `^appmesh(?:\\..+?\\..+?)*(\\.${name}\\.(.+?))(?:\\..+?\\..+?)*\\.(?:.+)$`,
  }));
  for (const name of ['DiscoveryName', 'TargetDiscoveryName']) {
    tags.push({
      tag_name: name,
      regex: `^appmesh(?:\\..+?\\..+?)*(\\.${name}\\.((?:(?!\\.(ClusterName|ServiceName|Direction)).)+))(?:\\..+?\\..+?)*\\.(?:.+)$`,
    });
  }
  return tags;
}

/** Renders the agent's bootstrap; with a user bootstrap (ENVOY_CONFIG_FILE) there is nothing to render. */
export function renderBootstrap(config: Config, platform: Platform): RenderedBootstrap {
  if (config.userBootstrap !== null) throw new Error('renderBootstrap: ENVOY_CONFIG_FILE is used as given; nothing to render');
  const files: SideFile[] = [];
  let bootstrap: Record<string, unknown>;
  if (config.mode === 'relay') {
    bootstrap = renderRelay(config);
  } else {
    bootstrap = renderSidecar(config, platform, files);
  }
  const { merged, problems } = mergeCustomFiles(bootstrap, config.customFiles);
  if (problems.length > 0) {
    throw configurationError(problems, { subject: 'the custom bootstrap files', plural: true, noun: 'conflict' });
  }
  return { bootstrap: merged, files };
}

function staticRuntime(config: Config): Record<string, unknown> {
  const layer: Record<string, unknown> = {
    'envoy.features.enable_all_deprecated_features': true,
    're2.max_program_size.error_level': 1000,
  };
  // Envoy 1.40 removed the guards no_extension_lookup_by_name, http_set_tracing_decision_in_request_id and
  // use_http_client_to_fetch_aws_credentials; setting a removed guard makes Envoy log an "envoy bug" with a stack
  // trace, so each is set only when asked to differ from Envoy's built-in behaviour (the reference defaults).
  if (!config.runtime.noExtensionLookupByName) layer['envoy.reloadable_features.no_extension_lookup_by_name'] = false;
  if (!config.runtime.setTracingDecision) layer['envoy.reloadable_features.http_set_tracing_decision_in_request_id'] = false;
  if (config.runtime.useHttpClientForAwsCredentials) layer['envoy.reloadable_features.use_http_client_to_fetch_aws_credentials'] = true;
  if (config.runtime.maxRequestsPerIoCycle !== null) layer['http.max_requests_per_io_cycle'] = config.runtime.maxRequestsPerIoCycle;
  return layer;
}

function renderSidecar(config: Config, platform: Platform, files: SideFile[]): Record<string, unknown> {
  const runtime = staticRuntime(config);
  const bootstrap: Record<string, unknown> = {
    node: renderNode(config, platform, runtime),
    admin: {
      access_log: [
        {
          name: 'envoy.access_loggers.file',
          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: config.envoyAdmin.accessLogPath },
        },
      ],
      address: adminAddressObject(config.envoyAdmin.address, config.envoyAdmin.ipv4Compat),
    },
    layered_runtime: {
      layers: [
        { name: 'static_layer_0', static_layer: runtime },
        { name: 'admin_layer', admin_layer: {} },
      ],
    },
  };

  const clusters: Record<string, unknown>[] = [];
  const clusterManager: Record<string, unknown> = {};
  if (config.outlierEventLogPath !== null) clusterManager['outlier_detection'] = { event_log_path: config.outlierEventLogPath };

  if (config.mode === 'ecs') {
    bootstrap['dynamic_resources'] = {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [
          {
            google_grpc: {
              stat_prefix: 'ads',
              target_uri: config.ecs.xdsSocketUri,
              channel_args: {
                args: {
                  'grpc.http2.max_pings_without_data': { int_value: 0 },
                  'grpc.keepalive_time_ms': { int_value: 10000 },
                  'grpc.keepalive_timeout_ms': { int_value: 20000 },
                  'grpc.initial_reconnect_backoff_ms': { int_value: 10000 },
                  'grpc.max_connection_age_ms': { int_value: 2400000 },
                  'grpc.max_connection_age_grace_ms': { int_value: 5000 },
                },
              },
            },
          },
        ],
      },
      lds_config: { ads: {}, initial_fetch_timeout: `${config.ecs.initialFetchTimeoutS}s`, resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: `${config.ecs.initialFetchTimeoutS}s`, resource_api_version: 'V3' },
    };
    // Zone-aware routing: the local cluster's membership comes over ADS; 1 ms so Envoys without it are not held.
    clusterManager['local_cluster_name'] = 'local_cluster';
    clusters.push({
      name: 'local_cluster',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: '0.001s', resource_api_version: 'V3' } },
    });
  } else if (config.mode === 'cloudmap') {
    // Envoy watches each file's name in its directory and reloads it when the agent renames a new one into place.
    // No watched_directory: with it, a rename of either file reloaded both (the unchanged listeners re-parsed at
    // every cluster update: Envoy's update p99 712 -> 265 ms in bench/cloud-map-fleet.ts at h = 2).
    bootstrap['dynamic_resources'] = {
      lds_config: { path_config_source: { path: `${config.runtimeDir}/${cloudMapXdsFiles.lds}` }, resource_api_version: 'V3' },
      cds_config: { path_config_source: { path: `${config.runtimeDir}/${cloudMapXdsFiles.cds}` }, resource_api_version: 'V3' },
    };
  }
  bootstrap['cluster_manager'] = clusterManager;

  // Tracing.
  const tracing = config.tracing;
  if (tracing !== null) {
    if (tracing.kind === 'xray') {
      const mesh = config.node === null ? null : parseMeshResource(config.node.id);
      const typed: Record<string, unknown> = {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.XRayConfig',
        daemon_endpoint: { protocol: 'UDP', address: tracing.daemonAddress, port_value: tracing.daemonPort },
        segment_name: tracing.segmentName,
        segment_fields: {
          origin: 'AWS::AppMesh::Proxy',
          ...(mesh === null ? {} : { aws: { app_mesh: { mesh_name: mesh.mesh, virtual_node_name: mesh.name } } }),
        },
      };
      if (tracing.sampling !== null) {
        if ('manifestPath' in tracing.sampling) {
          typed['sampling_rule_manifest'] = { filename: tracing.sampling.manifestPath };
        } else {
          const path = `${config.runtimeDir}/xray-sampling-rules.json`;
          files.push({
            path,
            content: `${JSON.stringify({ version: 2, default: { fixed_target: 1, rate: tracing.sampling.rate }, rules: [] })}\n`,
          });
          typed['sampling_rule_manifest'] = { filename: path };
        }
      }
      bootstrap['tracing'] = { http: { name: 'envoy.tracers.xray', typed_config: typed } };
    } else if (tracing.kind === 'datadog') {
      bootstrap['tracing'] = {
        http: {
          name: 'envoy.tracers.datadog',
          typed_config: { '@type': 'type.googleapis.com/envoy.config.trace.v3.DatadogConfig', collector_cluster: 'datadog_agent', service_name: tracing.serviceName },
        },
      };
      clusters.push(dnsCluster('datadog_agent', tracing.address, tracing.port));
    } else {
      bootstrap['tracing'] = {
        http: {
          name: 'envoy.tracers.zipkin',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig',
            collector_cluster: 'jaeger',
            collector_endpoint: '/api/v2/spans',
            collector_endpoint_version: tracing.encoding,
            shared_span_context: false,
          },
        },
      };
      clusters.push(dnsCluster('jaeger', tracing.address, tracing.port));
    }
  }

  if (config.ecs.sdsSocketPath !== null && config.mode === 'ecs') {
    clusters.push({
      name: 'static_cluster_sds_unix_socket',
      type: 'STATIC',
      connect_timeout: '1s',
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      load_assignment: {
        cluster_name: 'static_cluster_sds_unix_socket',
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: config.ecs.sdsSocketPath } } } }] }],
      },
    });
  }
  if (clusters.length > 0) bootstrap['static_resources'] = { clusters };

  // Stats: tags (unless the user brings a stats file), flush interval, sinks.
  if (!config.customFiles.some((f) => f.variable === 'ENVOY_STATS_CONFIG_FILE')) {
    const tags: Record<string, unknown>[] = [];
    const mesh = config.node === null ? null : parseMeshResource(config.node.id);
    if (config.ecs.fixedStatsTags && mesh !== null) {
      tags.push({ tag_name: 'appmesh.mesh', fixed_value: mesh.mesh }, { tag_name: `appmesh.${snakeType(mesh.type)}`, fixed_value: mesh.name });
    }
    if (config.mode === 'ecs' && config.ecs.metricExtension) tags.push(...serviceConnectStatsTags());
    if (tags.length > 0) bootstrap['stats_config'] = { stats_tags: tags };
  }
  if (config.statsFlushIntervalMs !== null) bootstrap['stats_flush_interval'] = durationString(config.statsFlushIntervalMs);
  if (config.dogStatsd !== null) {
    const address =
      'pipe' in config.dogStatsd
        ? { pipe: { path: config.dogStatsd.pipe } }
        : { socket_address: { protocol: 'UDP', address: config.dogStatsd.address, port_value: config.dogStatsd.port } };
    bootstrap['stats_sinks'] = [
      { name: 'envoy.stat_sinks.dog_statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address } },
    ];
  }
  return bootstrap;
}

function snakeType(type: string): string {
  return type.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function dnsCluster(name: string, address: string, port: number): Record<string, unknown> {
  return {
    name,
    type: 'STRICT_DNS',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
  };
}

function renderNode(config: Config, platform: Platform, runtime: Record<string, unknown>): Record<string, unknown> {
  const metadata: Record<string, unknown> = { 'aws.appmesh.static_runtime': runtime };
  const ifaces = platform.interfaces;
  if (Object.keys(ifaces.ipv4).length > 0 || Object.keys(ifaces.ipv6).length > 0) {
    metadata['aws.appmesh.task.interfaces'] = { ipv4: ifaces.ipv4, ipv6: ifaces.ipv6 };
  }
  if (config.mode === 'ecs' && config.ecs.metricExtension) metadata['aws.appmesh.metric_filter'] = { level: '1' };

  const platformInfo: Record<string, unknown> = {};
  const task = platform.task;
  if (config.ecs.executionEnv !== null) {
    const ecs: Record<string, unknown> = { ecsLaunchType: config.ecs.executionEnv };
    if (config.ecs.containerInstanceArn !== null) ecs['ecsContainerInstanceArn'] = config.ecs.containerInstanceArn;
    if (task?.clusterArn) ecs['ecsClusterArn'] = task.clusterArn;
    if (task?.taskArn) ecs['ecsTaskArn'] = task.taskArn;
    if (task?.cpu) ecs['CPU'] = task.cpu;
    if (task?.memory) ecs['Memory'] = task.memory;
    if (task?.supportedIpFamilies) ecs['supportedIPFamilies'] = task.supportedIpFamilies;
    platformInfo['ecsPlatformInfo'] = ecs;
  }
  if (task?.availabilityZone) platformInfo['AvailabilityZone'] = task.availabilityZone;
  if (task?.availabilityZoneId) platformInfo['AvailabilityZoneID'] = task.availabilityZoneId;
  const systemInfo: Record<string, unknown> = {};
  if (platform.machine !== null) systemInfo['systemPlatform'] = platform.machine;
  if (platform.kernelVersion !== null) systemInfo['systemKernelVersion'] = platform.kernelVersion;
  if (Object.keys(systemInfo).length > 0) platformInfo['systemInfo'] = systemInfo;
  if (config.ecs.fipsModeEnabled) platformInfo['fipsModeEnabled'] = true;
  if (Object.keys(platformInfo).length > 0) metadata['aws.appmesh.platformInfo'] = platformInfo;

  if (config.ecs.containerIpMapping !== null) metadata['aws.ecs.serviceconnect.ClusterIPMapping'] = config.ecs.containerIpMapping;
  if (config.ecs.listenerPortMapping !== null) metadata['aws.ecs.serviceconnect.ListenerPortMapping'] = config.ecs.listenerPortMapping;
  const sd: Record<string, string> = {};
  if (config.ecs.namespaceName !== null) sd['NamespaceName'] = config.ecs.namespaceName;
  if (config.ecs.namespaceArn !== null) sd['NamespaceArn'] = config.ecs.namespaceArn;
  if (Object.keys(sd).length > 0) metadata['aws.ecs.serviceconnect.ServiceDiscovery'] = sd;

  const { id, cluster } = nodeIdentity(config);
  const node: Record<string, unknown> = { id, cluster };
  if (task?.availabilityZoneId && config.region !== null) node['locality'] = { region: config.region, zone: task.availabilityZoneId };
  node['metadata'] = metadata;
  return node;
}

/** ECS-managed mode: the task set ARN from the env. Cloud Map mode: the task id within the namespace. */
export function nodeIdentity(config: Config): { id: string; cluster: string } {
  if (config.node !== null) return config.node;
  const doc = config.cloudMap?.document as { namespace?: unknown } | undefined;
  const namespace = typeof doc?.namespace === 'string' ? doc.namespace : 'service-connect';
  return { id: `${namespace}/${config.cloudMap?.taskId ?? 'task'}`, cluster: namespace };
}
