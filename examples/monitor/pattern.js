// The snoop's filter: an O2 address pattern (starting with '/') matched
// against a whole address or a leading part of it that ends at a '/', so
// "/synth" and "/synth/*" both show /synth/freq; any other text is looked
// for anywhere in the address. O2's pattern syntax: * (any characters but
// '/'), ? (one of them), [abc] [a-z] [!abc], {alt1,alt2}.

function escape(c) {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

/** A regular expression's source for an O2 pattern; throws Error on a bad pattern. */
export function patternSource(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error('a [ without its ]');
      let body = pattern.slice(i + 1, end);
      const negate = body[0] === '!';
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else if (c === '{') {
      const end = pattern.indexOf('}', i);
      if (end < 0) throw new Error('a { without its }');
      out += `(?:${pattern.slice(i + 1, end).split(',').map((a) => [...a].map(escape).join('')).join('|')})`;
      i = end;
    } else if (c === ']' || c === '}') {
      throw new Error(`a ${c} without its opening`);
    } else {
      out += escape(c);
    }
  }
  return out;
}

/**
 * A predicate on addresses for the filter text: empty matches everything.
 * Returns {match, error}; a bad pattern gives an error and matches nothing.
 */
export function addressFilter(text) {
  const t = text.trim();
  if (!t) return { match: () => true, error: null };
  if (t[0] !== '/') {
    const lower = t.toLowerCase();
    return { match: (a) => a.toLowerCase().includes(lower), error: null };
  }
  try {
    const re = new RegExp(`^${patternSource(t.replace(/\/+$/, ''))}(?:/|$)`);
    return { match: (a) => re.test(a), error: null };
  } catch (e) {
    return { match: () => false, error: e.message };
  }
}
