// The host policy (src/registry/host-policy.ts): a name that RESOLVES to a link-local address (cloud metadata
// services) is refused at dial time, before any packet, unless named; every answer is checked, not the first.
// The resolver is injected: no name is looked up and nothing is dialled here.
import t from 'tap';
import type { LookupAddress } from 'node:dns';
import { HostPolicy, HostRefusedError, type Resolver } from '../../src/registry/host-policy.js';

const answers = (addresses: LookupAddress[]): Resolver => (_host, _opts, cb) => cb(null, addresses);

function lookup(policy: HostPolicy, resolve: Resolver, host: string, all = false): Promise<unknown[]> {
  return new Promise((resolveP, reject) => {
    policy.lookup(resolve)(host, { all }, (err: unknown, ...rest: unknown[]) => (err ? reject(err) : resolveP(rest)));
  });
}

t.test('a name resolving to a link-local address is refused before it is dialled', async (t) => {
  const policy = new HostPolicy();
  const metadata = answers([{ address: '169.254.169.254', family: 4 }]);
  await t.rejects(lookup(policy, metadata, 'innocent.example'), HostRefusedError, 'IPv4 link-local');
  await t.rejects(lookup(policy, answers([{ address: 'fe80::1', family: 6 }]), 'v6.example'), HostRefusedError, 'IPv6 link-local');
  const mixed = answers([
    { address: '192.0.2.10', family: 4 },
    { address: '169.254.169.254', family: 4 },
  ]);
  await t.rejects(lookup(policy, mixed, 'mixed.example', true), /link-local address 169\.254\.169\.254/, 'every answer checked, not the first');
  t.same(await lookup(policy, answers([{ address: '192.0.2.10', family: 4 }]), 'fine.example'), ['192.0.2.10', 4], 'other addresses pass');
});

t.test('a host named by --insecure-registry may resolve to link-local', async (t) => {
  const policy = new HostPolicy({ named: ['metadata.site.example'] });
  t.same(await lookup(policy, answers([{ address: '169.254.10.1', family: 4 }]), 'metadata.site.example'), ['169.254.10.1', 4]);
  t.equal(policy.refusal('169.254.169.254', 80) !== undefined, true, 'an unnamed literal stays refused');
});

t.test('--registry-allow refuses every other host, loopback included', async (t) => {
  const policy = new HostPolicy({ allow: ['registry.site.example', '*.cern.ch'] });
  t.equal(policy.refusal('registry.site.example', 443), undefined);
  t.equal(policy.refusal('gitlab-registry.cern.ch', 443), undefined, 'a glob');
  t.match(policy.refusal('127.0.0.1', 5000), /not in --registry-allow/);
  t.match(policy.refusal('docker.io', 443), /not in --registry-allow/);
});
