/** The xDS files of Cloud Map mode written in pieces (render-resources.ts, resourceFilePieces). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateServiceConnectConfig } from '../../agent/config/index.ts';
import { serviceFromInstances, VipAllocator, type DiscoverySnapshot } from '../../agent/discovery/snapshot.ts';
import { renderResources, resourceFileDigest, resourceFilePieces, resourceFileText, resourceFileWithDigest } from '../../agent/bootstrap/render-resources.ts';
import { writeFileAtomic } from '../../agent/system/files.ts';

function namespaceOf(count: number): DiscoverySnapshot {
  const services = new Map<string, ReturnType<typeof serviceFromInstances>>();
  for (let s = 0; s < count; s++) {
    const protocol = ['http', 'grpc', 'tcp'][s % 3] as string;
    services.set(`svc${s}`, serviceFromInstances(`svc${s}`, [{ InstanceId: `i-${s}`, Attributes: { AWS_INSTANCE_IPV4: `10.9.${s >> 8}.${s & 255}`, AWS_INSTANCE_PORT: '8080', SC_CLIENT_ALIAS_DNS_NAME: `svc${s}`, SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: protocol } }]));
  }
  return { namespace: 'demo.local', services };
}

const config = validateServiceConnectConfig({ namespace: 'demo.local', services: [], portMappings: [], accessLogConfiguration: { format: 'TEXT', includeQueryParameters: 'ENABLED' } }).config!;

for (const count of [0, 1, 1000]) {
  test(`an xDS file of ${count} services written in pieces has exactly the bytes and the digest of the whole text`, async (t) => {
    const files = renderResources(namespaceOf(count), new VipAllocator(), { config, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'pieces-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const doc of [files.lds, files.cds]) {
      const whole = resourceFileText(doc);
      const pieces = resourceFilePieces(doc);
      await writeFileAtomic(join(dir, 'xds.yaml'), pieces);
      assert.equal(readFileSync(join(dir, 'xds.yaml'), 'utf8'), whole);
      assert.equal(resourceFileDigest(pieces), resourceFileDigest(whole));
    }
  });
}

test('a 1,000-service xDS file is written in pieces under 128 KiB each, so glibc serves none of them from a mapping of its own', () => {
  // The failure this pins down: the file's text as one buffer of over a megabyte raised glibc's thresholds for
  // mappings and for trimming its heap, and the agent's C heap kept megabytes of freed memory.
  const files = renderResources(namespaceOf(1000), new VipAllocator(), { config, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
  for (const doc of [files.lds, files.cds]) {
    const pieces = resourceFilePieces(doc);
    assert.ok(Buffer.byteLength(resourceFileText(doc)) > 512 * 1024, 'the file is large enough to matter');
    assert.ok(pieces.length > 1);
    for (const p of pieces) assert.ok(Buffer.byteLength(p) < 128 * 1024, `a piece of ${Buffer.byteLength(p)} bytes`);
  }
});

test('an xDS file written in pieces with its digest as version_info has the bytes of the whole text, so Envoy reports that digest as version_text', () => {
  // The failure this pins down: Cloud Map mode judges Envoy's verdict by the version_text Envoy reports; pieces that
  // dropped or misplaced version_info would leave every update unjudged (or judged against the wrong file).
  const files = renderResources(namespaceOf(300), new VipAllocator(), { config, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
  const doc = { version_info: 'abc"+/=', resources: files.cds.resources };
  assert.equal(resourceFilePieces(doc).join(''), resourceFileText(doc));
  assert.equal(JSON.parse(resourceFilePieces(doc).join('')).version_info, 'abc"+/=');
});

test('resourceFileWithDigest renders once: the digest of the file without version_info, and the file with that digest as version_info', () => {
  // The failure this pins down: a digest over other bytes than the version-free file would make every poll look like a
  // change (a rewrite each time), and a version_info other than that digest would leave every update unjudged.
  const files = renderResources(namespaceOf(300), new VipAllocator(), { config, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
  const { digest, pieces } = resourceFileWithDigest(files.cds);
  assert.equal(digest, resourceFileDigest(resourceFileText(files.cds)));
  assert.equal(pieces.join(''), resourceFileText({ version_info: digest, ...files.cds }));
});
