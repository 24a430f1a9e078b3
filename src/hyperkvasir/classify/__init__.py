"""Classification of the 23 labeled classes: data, LightningModule, evaluation, benchmark, prediction."""
