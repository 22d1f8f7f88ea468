// CDK's own template diff engine (the one behind `cdk diff`), as JSON for the update tests.
// usage: node tests/support/cfn_diff.js OLD.template.json NEW.template.json
// prints [{logicalId, type, impact, properties: {name: impact}}] for every resource that changes.
"use strict";
const fs = require("fs");
const { fullDiff } = require("@aws-cdk/cloudformation-diff");

const [oldPath, newPath] = process.argv.slice(2);
const read = (path) => JSON.parse(fs.readFileSync(path, "utf8"));
const diff = fullDiff(read(oldPath), read(newPath));
const changes = [];
diff.resources.forEachDifference((logicalId, change) => {
  const properties = {};
  for (const [name, property] of Object.entries(change.propertyUpdates || {})) {
    properties[name] = property.changeImpact || "UNKNOWN";
  }
  changes.push({ logicalId, type: change.resourceType, impact: change.changeImpact, properties });
});
process.stdout.write(JSON.stringify(changes));
