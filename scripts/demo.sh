#!/usr/bin/env bash
# Loads the demo park's master data through the HTTP API. Re-running is harmless: an
# identical record answers 200.
set -euo pipefail
url=$1 key=$2
post() {
  local code
  code=$(curl -sS -o /tmp/circa-demo.$$ -w '%{http_code}' -X POST "$url$1" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2")
  case "$code" in 200|201) ;; *) echo "demo: POST $1 answered $code: $(cat /tmp/circa-demo.$$)" >&2; rm -f /tmp/circa-demo.$$; return 1;; esac
  rm -f /tmp/circa-demo.$$
}
post /v1/parties '{"code":"ACME","name":"Acme Plastics","roles":["generator","manufacturer"],"country":"DE"}'
post /v1/parties '{"code":"GREENCYCLE","name":"GreenCycle Recycling","roles":["recycler","collector"],"country":"DE"}'
post /v1/parties '{"code":"PARKWASTE","name":"Park Waste Services","roles":["collector","carrier"],"country":"DE"}'
post /v1/parties '{"code":"LANDFILL","name":"County Landfill","roles":["landfill"],"country":"DE"}'
post /v1/parties '{"code":"EFW","name":"City Energy from Waste","roles":["energy_recovery"],"country":"DE"}'
post /v1/sites '{"code":"ACME-1","party":"ACME","name":"Acme plant 1","kind":"factory","country":"DE"}'
post /v1/sites '{"code":"GC-SORT","party":"GREENCYCLE","name":"GreenCycle sorting line","kind":"sorting","country":"DE"}'
post /v1/sites '{"code":"GC-REC","party":"GREENCYCLE","name":"GreenCycle pelletising","kind":"recycling","country":"DE"}'
post /v1/sites '{"code":"PW-YARD","party":"PARKWASTE","name":"Park collection yard","kind":"collection_point","country":"DE"}'
post /v1/sites '{"code":"LF-1","party":"LANDFILL","name":"County landfill","kind":"landfill","country":"DE"}'
post /v1/sites '{"code":"EFW-1","party":"EFW","name":"City EfW plant","kind":"incinerator","country":"DE"}'
post /v1/materials '{"code":"PET","name":"Polyethylene terephthalate","category":"plastic","hazardous":false,"renewable":false,"density_kg_m3":1380,"value_per_kg":0.35}'
post /v1/materials '{"code":"HDPE","name":"High-density polyethylene","category":"plastic","hazardous":false,"renewable":false,"density_kg_m3":950,"value_per_kg":0.40}'
post /v1/materials '{"code":"CARDBOARD","name":"Corrugated cardboard","category":"paper","hazardous":false,"renewable":true,"value_per_kg":0.12}'
post /v1/materials '{"code":"MIXED","name":"Mixed municipal waste","category":"mixed","hazardous":false,"renewable":false}'
echo "demo: master data loaded (5 parties, 6 sites, 4 materials)"
