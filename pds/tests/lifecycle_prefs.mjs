// pds/tests/lifecycle_prefs.mjs: preferences with the official @atproto/api client against our
// pds: the raw app.bsky.actor.putPreferences / getPreferences calls (responses parsed and
// validated by the client's lexicons) and the client's own preference helpers, which read,
// modify and write the whole list (setAdultContentEnabled, addSavedFeeds, getPreferences).
// Usage: node lifecycle_prefs.mjs <pds base URL> <tests/interop dir> <handle suffix>
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, interopDir, suffix] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

async function main() {
  const handle = 'prefs' + suffix + '.test';
  const agent = new AtpAgent({ service: base });
  await agent.createAccount({ handle, email: handle + '@example.com', password: 'prefs-pass' });

  const empty = await agent.app.bsky.actor.getPreferences();
  check(Array.isArray(empty.data.preferences) && empty.data.preferences.length === 0,
        'no preferences at first');

  const prefs = [
    { $type: 'app.bsky.actor.defs#adultContentPref', enabled: false },
    { $type: 'app.bsky.actor.defs#contentLabelPref', label: 'nsfw', visibility: 'warn' },
    { $type: 'app.bsky.actor.defs#personalDetailsPref', birthDate: '1990-05-01T00:00:00.000Z' },
  ];
  await agent.app.bsky.actor.putPreferences({ preferences: prefs });
  const got = await agent.app.bsky.actor.getPreferences();
  check(got.data.preferences.length === 3, 'three preferences back');
  check(JSON.stringify(got.data.preferences) === JSON.stringify(prefs), 'same order and values');

  // The client's read-modify-write helpers.
  await agent.setAdultContentEnabled(true);
  await agent.addSavedFeeds([{ type: 'timeline', value: 'following', pinned: true }]);
  const parsed = await agent.getPreferences();
  check(parsed.moderationPrefs.adultContentEnabled === true, 'adult content enabled');
  check(parsed.birthDate instanceof Date && parsed.birthDate.getUTCFullYear() === 1990,
        'birth date kept');
  check(parsed.savedFeeds.some((f) => f.type === 'timeline'), 'saved feed added');

  // Refused input: the client sends it, our pds answers 400 InvalidRequest.
  let refused = null;
  try {
    await agent.app.bsky.actor.putPreferences({ preferences: [{ $type: 'com.example.pref' }] });
  } catch (e) {
    refused = e;
  }
  check(refused && refused.status === 400 && refused.error === 'InvalidRequest',
        'foreign namespace refused');

  console.log(JSON.stringify({ ok: true, count: parsed.savedFeeds.length }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
  process.exit(1);
});
