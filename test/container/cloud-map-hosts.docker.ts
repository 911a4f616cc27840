/**
 * Cloud Map mode under Docker when the task's /etc/hosts cannot be written: Docker writes it root:root 0644, and the
 * image's user (20000) may not write it unless the task makes it group-writable (the compose file's hosts step).
 * The failure this pins down: the sidecar exited 7 and left its Cloud Map registration behind, so clients kept
 * sending traffic to a task whose sidecar was gone. It must stop with one line naming APPNET_HOSTS_FILE, and
 * register nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ListInstancesCommand, ListServicesCommand, ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import { waitFor } from '../helpers/wait.ts';
import { DOCKER, AGENT_IMAGE, docker, health, inspect, run } from './engine.ts';

const prefix = `sc-image-test-hosts-${process.pid}`;
const network = prefix;
const cloudmap = `${prefix}-cloudmap`;
const sidecar = `${prefix}-sidecar`;
let endpoint: string;

before(async () => {
  await docker(['network', 'create', network]);
  await docker(['run', '-d', '--name', cloudmap, '--network', network, 'service-connect-cloudmap:local']);
  await waitFor('the Cloud Map emulator to be healthy', async () => (await health(cloudmap)) === 'healthy', { timeoutMs: 60_000, everyMs: 250 });
  endpoint = `http://${await inspect(cloudmap, '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')}:5000`;
});

after(async () => {
  await run(DOCKER, ['rm', '-f', sidecar, cloudmap], { timeoutMs: 60_000 });
  await run(DOCKER, ['network', 'rm', network], { timeoutMs: 30_000 });
});

test('a Cloud Map sidecar that cannot write the task\'s /etc/hosts stops with one line naming it and leaves no registration behind', async () => {
  await docker(['run', '-d', '--name', sidecar, '--network', network, '--cap-drop', 'ALL',
    '-e', 'AWS_REGION=us-east-1', '-e', 'AWS_ACCESS_KEY_ID=local', '-e', 'AWS_SECRET_ACCESS_KEY=local',
    '-e', `AWS_ENDPOINT_URL_SERVICEDISCOVERY=http://${cloudmap}:5000`,
    '-e', 'APPNET_SERVICE_CONNECT_CONFIG={"namespace":"local","services":[{"portName":"http","discoveryName":"lonely","clientAliases":[{"port":80}]}],"portMappings":[{"name":"http","containerPort":8080,"appProtocol":"http"}]}',
    '-e', 'APPNET_TASK_ID=lonely-1', '-e', 'APPNET_TASK_IPV4=127.0.0.1',
    AGENT_IMAGE]);
  await waitFor('the sidecar to stop', async () => (await inspect(sidecar, '{{.State.Status}}')) === 'exited', { timeoutMs: 60_000, everyMs: 250 });
  const logs = await run(DOCKER, ['logs', sidecar]);
  assert.notEqual(await inspect(sidecar, '{{.State.ExitCode}}'), '0', `${logs.stdout}${logs.stderr}`);
  assert.match(logs.stderr, /^agent: AGENT_ERR_WRITE: APPNET_HOSTS_FILE="\/etc\/hosts": [^\n]*EACCES/m);
  assert.doesNotMatch(`${logs.stdout}${logs.stderr}`, /registered in Cloud Map|\n\s+at /, 'nothing registered, no stack trace');
  const sd = new ServiceDiscoveryClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  try {
    const services = (await sd.send(new ListServicesCommand({}))).Services ?? [];
    for (const s of services) {
      const instances = (await sd.send(new ListInstancesCommand({ ServiceId: s.Id }))).Instances ?? [];
      assert.deepEqual(instances.map((i) => i.Id), [], `service ${s.Name} has no instance left behind`);
    }
  } finally {
    sd.destroy();
  }
});
