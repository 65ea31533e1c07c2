//! The row CDF's instance gives today, in the published form, built by the code path the
//! lake's rows take: the stream's flattener (sync), alignment to the raw table's schema,
//! and the publish form (snapshot).

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;

use crate::cdf::dto::{Instance, SelectSource};
use crate::flatten::Flattener;
use crate::plan::StreamSpec;
use crate::schema::{align_batch, publish_batch};

/// The published row `instance` gives under each stream of the table that can write it
/// (one per stream; the edges of a view may come from several streams). A stream whose
/// flattener refuses the instance gives the reason instead.
pub fn candidate_rows(
    instance: &Instance,
    streams: &[&StreamSpec],
    raw_schema: &SchemaRef,
) -> Vec<Result<RecordBatch, String>> {
    streams
        .iter()
        .map(|spec| {
            let schema = spec.schema(Some(raw_schema));
            let mut flattener = Flattener::new(&schema);
            flattener.push(instance).map_err(|e| e.to_string())?;
            let batch = flattener.finish().map_err(|e| e.to_string())?;
            let aligned = align_batch(&batch, raw_schema).map_err(|e| e.to_string())?;
            publish_batch(&aligned).map_err(|e| e.to_string())
        })
        .collect()
}

/// The sources a byids request names to get every property the table's streams read.
pub fn sources_of(streams: &[&StreamSpec]) -> Vec<SelectSource> {
    let mut sources: Vec<SelectSource> = Vec::new();
    for spec in streams {
        for source in &spec.select.sources {
            if !sources.contains(source) {
                sources.push(source.clone());
            }
        }
    }
    sources
}
