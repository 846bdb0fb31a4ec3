// Creates a container in the tests' Azurite: node create_container.js BLOB_URL CONTAINER
// (Azurite's well-known development account; object_store cannot create containers.)
const { BlobServiceClient } = require('@azure/storage-blob');

const [url, container] = process.argv.slice(2);
const key = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const connection = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${key};` +
  `BlobEndpoint=${url}/devstoreaccount1;`;
BlobServiceClient.fromConnectionString(connection).getContainerClient(container).createIfNotExists().then(
  () => process.exit(0),
  (error) => { console.error(`creating container ${container} at ${url}: ${error.message}`); process.exit(1); },
);
