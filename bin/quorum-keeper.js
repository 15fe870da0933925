#!/usr/bin/env node
// quorum-keeper operator CLI. Runs the TypeScript source through tsx (installed by `npm ci`
// in a checkout of this repository, which is how Quorum Keeper is deployed).
'use strict';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs');
require('../cli/main.ts').run();
