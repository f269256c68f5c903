/**
 * `WWW-Authenticate` challenges (RFC 9110 §11.6.1): `Bearer realm="https://auth/token",service="reg",
 * scope="repository:a/b:pull,push"`, possibly several in one header or over several headers. Quoted values
 * may hold commas and backslash escapes, which is why a split on ',' is not enough (the scope above).
 */

export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, ... */
  readonly scheme: string;
  /** Parameters by lower-case name. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Every challenge found, in order; junk between challenges is skipped rather than failing the rest. */
export function parseChallenges(value: string | readonly string[] | undefined): Challenge[] {
  if (value === undefined) return [];
  if (typeof value !== 'string') return value.flatMap((v) => parseChallenges(v));
  return new Scanner(value).challenges();
}

/** The challenge tocfs answers: Bearer with a realm, else Basic; undefined when neither is offered. */
export function pickChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return (
    challenges.find((c) => c.scheme === 'bearer' && (c.params.realm ?? '') !== '') ??
    challenges.find((c) => c.scheme === 'basic')
  );
}

class Scanner {
  #s: string;
  #i = 0;

  constructor(s: string) {
    this.#s = s;
  }

  challenges(): Challenge[] {
    const out: Challenge[] = [];
    while (this.#skip(/[\s,]/), this.#i < this.#s.length) {
      const scheme = this.#token();
      if (scheme === '') {
        this.#i++;
        continue;
      }
      out.push({ scheme: scheme.toLowerCase(), params: this.#params() });
    }
    return out;
  }

  #params(): Record<string, string> {
    const params: Record<string, string> = {};
    for (;;) {
      const save = this.#i;
      this.#skip(/[\s,]/);
      const name = this.#token();
      this.#skip(/\s/);
      if (name === '') {
        if (this.#i >= this.#s.length) return params;
        // Junk where a parameter should be: drop it up to the next comma and carry on.
        this.#skipToComma();
        continue;
      }
      if (this.#s[this.#i] !== '=') {
        // A bare token is the scheme of the next challenge.
        this.#i = save;
        return params;
      }
      this.#i++;
      this.#skip(/\s/);
      params[name.toLowerCase()] = this.#s[this.#i] === '"' ? this.#quoted() : this.#bare();
    }
  }

  #token(): string {
    const start = this.#i;
    while (this.#i < this.#s.length && TOKEN_CHAR.test(this.#s[this.#i]!)) this.#i++;
    return this.#s.slice(start, this.#i);
  }

  // Lenient: some servers send unquoted URLs (`realm=https://x/token`), which are not RFC tokens.
  #bare(): string {
    const start = this.#i;
    while (this.#i < this.#s.length && !/[\s,]/.test(this.#s[this.#i]!)) this.#i++;
    return this.#s.slice(start, this.#i);
  }

  #quoted(): string {
    let out = '';
    this.#i++;
    while (this.#i < this.#s.length) {
      const c = this.#s[this.#i++]!;
      if (c === '"') return out;
      if (c === '\\' && this.#i < this.#s.length) out += this.#s[this.#i++]!;
      else out += c;
    }
    return out;
  }

  #skip(re: RegExp): void {
    while (this.#i < this.#s.length && re.test(this.#s[this.#i]!)) this.#i++;
  }

  #skipToComma(): void {
    while (this.#i < this.#s.length && this.#s[this.#i] !== ',') this.#i++;
  }
}
