import t from 'tap';
import { InvalidReferenceError } from '../../src/errors.js';
import {
  formatReference,
  isLoopbackRegistry,
  parseImagePath,
  parseReference,
  registryEndpoint,
} from '../../src/registry/reference.js';
import type { ImageReference } from '../../src/registry/types.js';

const H = 'a'.repeat(64);
const D = `sha256:${H}`;
const D512 = `sha512:${'b'.repeat(128)}`;

const valid: Array<[string, ImageReference]> = [
  ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
  ['busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36' }],
  ['library/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
  ['user/app:v1', { registry: 'docker.io', repository: 'user/app', tag: 'v1' }],
  ['docker.io/python:3.12', { registry: 'docker.io', repository: 'library/python', tag: '3.12' }],
  ['docker.io/library/python', { registry: 'docker.io', repository: 'library/python', tag: 'latest' }],
  ['index.docker.io/python', { registry: 'docker.io', repository: 'library/python', tag: 'latest' }],
  ['registry-1.docker.io/user/app', { registry: 'docker.io', repository: 'user/app', tag: 'latest' }],
  ['registry.hub.docker.com/library/centos:centos7', { registry: 'docker.io', repository: 'library/centos', tag: 'centos7' }],
  ['Docker.IO/python', { registry: 'docker.io', repository: 'library/python', tag: 'latest' }],
  ['ghcr.io/owner/repo:tag', { registry: 'ghcr.io', repository: 'owner/repo', tag: 'tag' }],
  ['ghcr.io/app', { registry: 'ghcr.io', repository: 'app', tag: 'latest' }],
  ['quay.io/a/b/c/d:x', { registry: 'quay.io', repository: 'a/b/c/d', tag: 'x' }],
  ['Registry.Example.COM/app', { registry: 'registry.example.com', repository: 'app', tag: 'latest' }],
  ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest' }],
  ['localhost:5000/app:dev', { registry: 'localhost:5000', repository: 'app', tag: 'dev' }],
  ['127.0.0.1:5000/ns/app', { registry: '127.0.0.1:5000', repository: 'ns/app', tag: 'latest' }],
  ['[::1]:5000/app:1', { registry: '[::1]:5000', repository: 'app', tag: '1' }],
  ['[::1]/app', { registry: '[::1]', repository: 'app', tag: 'latest' }],
  ['[2001:DB8::1]:443/app', { registry: '[2001:db8::1]:443', repository: 'app', tag: 'latest' }],
  ['myhost:5000/app', { registry: 'myhost:5000', repository: 'app', tag: 'latest' }],
  [`busybox@${D}`, { registry: 'docker.io', repository: 'library/busybox', digest: D }],
  [`busybox:1.36@${D}`, { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', digest: D }],
  [`localhost:5000/app:1@${D}`, { registry: 'localhost:5000', repository: 'app', tag: '1', digest: D }],
  [`localhost:5000/app@${D512}`, { registry: 'localhost:5000', repository: 'app', digest: D512 }],
  ['a.b/x.y_z__w-v--u', { registry: 'a.b', repository: 'x.y_z__w-v--u', tag: 'latest' }],
  ['app:Tag_1.2-rc', { registry: 'docker.io', repository: 'library/app', tag: 'Tag_1.2-rc' }],
  ['app:_x', { registry: 'docker.io', repository: 'library/app', tag: '_x' }],
  [`app:${'t'.repeat(128)}`, { registry: 'docker.io', repository: 'library/app', tag: 't'.repeat(128) }],
  // Without a slash, a colon is a tag: docker reads `localhost:5000` the same way.
  ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000' }],
  ['host-1.example:65535/x', { registry: 'host-1.example:65535', repository: 'x', tag: 'latest' }],
];

const invalid: Array<[string, string]> = [
  ['', 'empty reference'],
  [' busybox', 'whitespace'],
  ['busybox latest', 'whitespace'],
  ['busybox\n', 'whitespace'],
  ['a//b', 'empty path component'],
  ['/busybox', 'empty path component'],
  ['busybox/', 'empty path component'],
  ['ghcr.io/', 'empty path component'],
  ['BusyBox', 'lower-case'],
  ['ghcr.io/Owner/repo', 'lower-case'],
  ['ghcr.io/ow ner', 'whitespace'],
  ['ghcr.io/own$er', 'invalid character "$"'],
  ['ghcr.io/-repo', 'must start and end'],
  ['ghcr.io/repo-', 'must start and end'],
  ['ghcr.io/re..po', 'must start and end'],
  ['ghcr.io/re___po', 'must start and end'],
  ['busybox:', "empty tag after ':'"],
  ['busybox@', "empty digest after '@'"],
  ['busybox:1@', "empty digest after '@'"],
  ['busybox:-x', 'invalid tag'],
  ['busybox:a+b', 'invalid tag'],
  [`busybox:${'t'.repeat(129)}`, 'longer than 128'],
  ['busybox@sha256:abc', 'must have 64 hex digits, got 3'],
  [`busybox@sha256:${'A'.repeat(64)}`, 'lower-case hex'],
  [`busybox@sha256:${'g'.repeat(64)}`, 'lower-case hex'],
  [`busybox@md5:${'a'.repeat(32)}`, 'unsupported digest algorithm "md5"'],
  [`busybox@sha512:${H}`, 'must have 128 hex digits'],
  [`busybox@${H}`, 'algorithm:hex'],
  [`busybox@${D}@${D}`, "more than one '@'"],
  ['localhost:/app', "empty port after ':'"],
  ['localhost:0/app', 'invalid port "0"'],
  ['localhost:65536/app', 'invalid port "65536"'],
  ['localhost:50a0/app', 'invalid port "50a0"'],
  ['ex..ample.com/app', 'empty label'],
  ['-bad.example/app', 'invalid registry host'],
  ['bad_host.example/app', 'invalid registry host'],
  ['[::1/app', 'invalid IPv6 host'],
  ['[zz::1]:5000/app', 'invalid IPv6 address'],
  ['[fe80::1%eth0]/app', 'invalid IPv6 address'],
  [H, 'image ID'],
  [`example.com/${'a'.repeat(250)}`, 'longer than 255'],
  ['@' + D, 'empty repository name'],
  [':tag', 'empty repository name'],
];

t.test('parses valid references to their normalised parts', async (t) => {
  t.ok(valid.length + invalid.length >= 40, 'the table is big enough to mean something');
  for (const [input, want] of valid) t.same(parseReference(input), want, input);
});

t.test('rejects each malformed reference with INVALID_REFERENCE saying what is wrong', async (t) => {
  for (const [input, fragment] of invalid) {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    t.type(caught, InvalidReferenceError, JSON.stringify(input));
    const err = caught as InvalidReferenceError;
    t.equal(err.code, 'INVALID_REFERENCE', JSON.stringify(input));
    t.match(err.message, fragment, JSON.stringify(input));
    t.equal(err.reference, input, 'the error keeps the input');
  }
});

t.test('name length counts host and path as written, up to 255', async (t) => {
  const host = 'example.com/';
  t.ok(parseReference(host + 'a'.repeat(255 - host.length)));
  t.throws(() => parseReference(host + 'a'.repeat(256 - host.length)), { code: 'INVALID_REFERENCE' });
});

t.test('defaultTag replaces latest only when neither tag nor digest is given', async (t) => {
  t.equal(parseReference('app', { defaultTag: 'stable' }).tag, 'stable');
  t.equal(parseReference('app:1', { defaultTag: 'stable' }).tag, '1');
  t.equal(parseReference(`app@${D}`, { defaultTag: 'stable' }).tag, undefined);
  t.throws(() => parseReference('app', { defaultTag: 'no good' }), /default invalid tag/);
});

t.test('formatReference prints the canonical form and round-trips', async (t) => {
  t.equal(formatReference(parseReference('python')), 'docker.io/library/python:latest');
  t.equal(formatReference(parseReference(`ghcr.io/a/b@${D}`)), `ghcr.io/a/b@${D}`);
  t.equal(formatReference(parseReference(`[::1]:5000/a:t@${D}`)), `[::1]:5000/a:t@${D}`);
  for (const [input] of valid) {
    const ref = parseReference(input);
    t.same(parseReference(formatReference(ref)), ref, `round-trip ${input}`);
  }
});

t.test('registryEndpoint sends Docker Hub to registry-1.docker.io and others unchanged', async (t) => {
  t.equal(registryEndpoint('docker.io'), 'registry-1.docker.io');
  t.equal(registryEndpoint('ghcr.io'), 'ghcr.io');
  t.equal(registryEndpoint('localhost:5000'), 'localhost:5000');
});

t.test('isLoopbackRegistry knows 127/8, ::1 and localhost, with or without port', async (t) => {
  for (const r of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.9.8.7:1', '[::1]', '[::1]:5000', '::1', '[0:0:0:0:0:0:0:1]:5000', '[::ffff:127.0.0.1]:80']) {
    t.ok(isLoopbackRegistry(r), r);
  }
  for (const r of ['docker.io', 'ghcr.io:443', '128.0.0.1:5000', '10.0.0.1', '[::2]:5000', 'localhost.example.com', '[::ffff:10.0.0.1]']) {
    t.notOk(isLoopbackRegistry(r), r);
  }
});

t.test('parseImagePath reads the mount layout HOST/PATH...:TAG', async (t) => {
  t.same(parseImagePath(['docker.io', 'library', 'python:3.12', 'usr', 'bin']), {
    ref: { registry: 'docker.io', repository: 'library/python', tag: '3.12' },
    consumed: 3,
  });
  t.same(parseImagePath(['docker.io', 'python:3.12']), {
    ref: { registry: 'docker.io', repository: 'library/python', tag: '3.12' },
    consumed: 2,
  });
  t.same(parseImagePath(['registry.hub.docker.com', 'library', 'centos:centos7']), {
    ref: { registry: 'docker.io', repository: 'library/centos', tag: 'centos7' },
    consumed: 3,
  });
  t.same(parseImagePath(['localhost:5000', 'a', 'b', `c@${D}`]), {
    ref: { registry: 'localhost:5000', repository: 'a/b/c', digest: D },
    consumed: 4,
  });
  t.same(parseImagePath(['[::1]:5000', `app:1@${D}`, 'etc']), {
    ref: { registry: '[::1]:5000', repository: 'app', tag: '1', digest: D },
    consumed: 2,
  });
});

t.test('parseImagePath takes the first component as the host even without a dot', async (t) => {
  // In the mount layout the host is never guessed: `myregistry` is a host, not a Docker Hub user.
  t.same(parseImagePath(['myregistry', 'app:1']), {
    ref: { registry: 'myregistry', repository: 'app', tag: '1' },
    consumed: 2,
  });
});

t.test('parseImagePath returns undefined for directories above an image', async (t) => {
  t.equal(parseImagePath([]), undefined);
  t.equal(parseImagePath(['docker.io']), undefined);
  t.equal(parseImagePath(['docker.io', 'library']), undefined);
  t.equal(parseImagePath(['ghcr.io', 'a', 'b', 'c']), undefined);
});

t.test('parseImagePath rejects components that can never name an image', async (t) => {
  t.throws(() => parseImagePath(['docker.io', 'Library']), { code: 'INVALID_REFERENCE', message: /lower-case/ });
  t.throws(() => parseImagePath(['docker.io', '.Trash']), { code: 'INVALID_REFERENCE' });
  t.throws(() => parseImagePath(['bad host', 'a']), { code: 'INVALID_REFERENCE' });
  t.throws(() => parseImagePath(['localhost:99999', 'a:1']), { code: 'INVALID_REFERENCE', message: /port/ });
  t.throws(() => parseImagePath(['docker.io', 'python:']), { message: /empty tag/ });
  t.throws(() => parseImagePath(['docker.io', 'python@sha256:12']), { message: /64 hex digits/ });
  t.throws(() => parseImagePath(['docker.io', 'python:a:b']), { message: /invalid character ":"/ });
  t.throws(() => parseImagePath(['', 'a:1']), { message: /empty registry host/ });
});
