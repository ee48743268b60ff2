// tus-js-client against /api/v1/tus: upload in 1 MiB chunks, abort mid-chunk (the request is cut), then
// resume with a new Upload from the stored URL and finish. Prints key=value lines for the Python test.
// usage: node tus_client.mjs ENDPOINT TOKEN PROJECT_ID FILE
import { readFileSync } from 'node:fs'
import * as tus from 'tus-js-client'

const [endpoint, token, projectId, file] = process.argv.slice(2)
const data = readFileSync(file)
const common = {
  headers: { Authorization: `Bearer ${token}` },
  metadata: { project_id: projectId, filename: 'noise.mp4', filetype: 'video/mp4' },
  chunkSize: 1024 * 1024,
  retryDelays: [200, 500, 1000],
}

const first = await new Promise((resolve, reject) => {
  let accepted = 0
  const upload = new tus.Upload(data, {
    ...common,
    endpoint,
    onChunkComplete: (_size, bytesAccepted) => { accepted = bytesAccepted },
    onProgress: (bytesSent) => {
      if (bytesSent > 2.5 * 1024 * 1024 && upload.url) {
        upload.abort(false).then(() => resolve({ url: upload.url, accepted }))
      }
    },
    onError: reject,
    onSuccess: () => reject(new Error('the first upload was meant to be aborted')),
  })
  upload.start()
})

const second = await new Promise((resolve, reject) => {
  let resumedFrom = null
  let assetId = null
  const upload = new tus.Upload(data, {
    ...common,
    uploadUrl: first.url,
    onBeforeRequest: (req) => {
      if (req.getMethod() === 'PATCH' && resumedFrom === null) resumedFrom = req.getHeader('Upload-Offset')
    },
    onAfterResponse: (req, res) => {
      if (req.getMethod() === 'PATCH' && res.getHeader('Asset-Id')) assetId = res.getHeader('Asset-Id')
    },
    onError: reject,
    onSuccess: () => resolve({ resumedFrom, assetId }),
  })
  upload.start()
})

console.log(`aborted_at=${first.accepted}`)
console.log(`resumed_from=${second.resumedFrom}`)
console.log(`asset_id=${second.assetId}`)
