// The peer of the prewctl benchmark: what a Node team would write for the
// same job with sharp and the AWS SDK.  List the originals, and with
// CONCURRENCY requests in flight get each one, resize it for every preset
// and put the previews.  No staleness check: it is timed on full runs only.
//
// Environment: PEER_ENDPOINT, PEER_BUCKET, PEER_SOURCE (prefix of the
// originals), PEER_PREVIEWS (prefix of the previews), PEER_PRESETS
// ("large:1440,medium:640"), PEER_QUALITY, PEER_CONCURRENCY; credentials
// and region as the SDK finds them.  Prints one JSON line of counts.
import { S3Client, ListObjectsV2Command, GetObjectCommand, PutObjectCommand }
    from '@aws-sdk/client-s3';
import sharp from 'sharp';

const env = (name) => {
	const v = process.env[name];
	if (!v)
		throw new Error(`${name} is not set`);
	return v;
};

const bucket = env('PEER_BUCKET');
const source = env('PEER_SOURCE');
const previews = env('PEER_PREVIEWS');
const quality = Number(env('PEER_QUALITY'));
const concurrency = Number(env('PEER_CONCURRENCY'));
const presets = env('PEER_PRESETS').split(',').map((s) => {
	const [name, width] = s.split(':');
	return { name, width: Number(width) };
});
const s3 = new S3Client({ endpoint: env('PEER_ENDPOINT'), forcePathStyle: true });

const keys = [];
let token;
do {
	const page = await s3.send(new ListObjectsV2Command({
		Bucket: bucket, Prefix: source, ContinuationToken: token }));
	for (const o of page.Contents ?? [])
		if (/\.jpe?g$/i.test(o.Key))
			keys.push(o.Key);
	token = page.IsTruncated ? page.NextContinuationToken : undefined;
} while (token);

let next = 0, puts = 0;
async function worker() {
	while (next < keys.length) {
		const key = keys[next++];
		const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
		const body = Buffer.from(await obj.Body.transformToByteArray());
		const rel = key.slice(source.length);
		for (const p of presets) {
			const out = await sharp(body).rotate()
			    .resize({ width: p.width, withoutEnlargement: true })
			    .jpeg({ quality }).toBuffer();
			await s3.send(new PutObjectCommand({ Bucket: bucket,
			    Key: `${previews}${p.name}/${rel}`, Body: out,
			    ContentType: 'image/jpeg' }));
			puts++;
		}
	}
}
await Promise.all(Array.from({ length: concurrency }, worker));
console.log(JSON.stringify({ originals: keys.length, puts }));
